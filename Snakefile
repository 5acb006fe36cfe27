# XAS Data Engine: structures -> nonequivalent sites -> FEFF10 XANES -> descriptors -> HDF5 shards -> reports.
# Run: snakemake --cores 2   (cluster: snakemake --profile workflow/profiles/slurm)
import sys

from snakemake.utils import min_version, validate

from xasengine.config import validate_config
from xasengine.errors import ConfigError

min_version("9.20")


configfile: "config.yaml"


# one line naming the bad key (snakemake's own message below it is a page of schema)
try:
    validate_config(config)
except ConfigError as error:
    sys.exit(f"error [config]: {error}")
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/structures.smk"
include: "workflow/rules/sites.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/models.smk"


rule all:
    input:
        report_targets(),
        baseline_metrics,
    default_target: True


# FEFF for every structure and nothing downstream: the long dataset-generation run (resumable).
rule feff_all:
    input:
        all_feff,
