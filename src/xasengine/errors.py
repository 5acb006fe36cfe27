"""One exception type per pipeline stage, so the CLI and the DAG can report them by stage."""


class XasEngineError(Exception):
    """Base class: any error a scientist can act on; the CLI prints it as one line."""

    stage = "engine"


class ConfigError(XasEngineError):
    stage = "config"


class StructureError(XasEngineError):
    stage = "structures"


class SiteError(XasEngineError):
    stage = "sites"


class FeffRunError(XasEngineError):
    stage = "feff"


class FeffCrashError(FeffRunError):
    """FEFF stopped with an error of its own (not a timeout or a kill), so a rescue input may succeed."""


class SpectrumError(XasEngineError):
    stage = "spectra"


class DescriptorError(XasEngineError):
    stage = "descriptors"


class ShardError(XasEngineError):
    stage = "shards"


class ModelError(XasEngineError):
    stage = "models"


class PredictError(XasEngineError):
    stage = "predict"


class ReportError(XasEngineError):
    stage = "reports"


class StandardsError(XasEngineError):
    stage = "standards"
