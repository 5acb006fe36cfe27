# XAS Data Engine: structures -> nonequivalent sites -> FEFF10 XANES -> descriptors -> HDF5 shards -> reports.
# Run: snakemake --cores 2   (cluster: snakemake --profile workflow/profiles/slurm)
from snakemake.utils import min_version, validate

min_version("9.20")


configfile: "config.yaml"


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
