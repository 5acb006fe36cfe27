# XAS Data Engine: structures -> nonequivalent sites -> FEFF10 XANES -> descriptors -> HDF5 shards -> reports.
# Run: snakemake --cores 2   (cluster: snakemake --profile workflow/profiles/slurm)
from snakemake.utils import min_version

from xasengine.config import validate_or_exit

min_version("9.20")


configfile: "config.yaml"


# schema + cross-key checks, one line per problem and exit 1 before any job (snakemake's validate() shows a traceback)
_valid = validate_or_exit(config)
config.clear()
config.update(_valid)


report: "workflow/report/workflow.rst"


# Short aggregation steps (and the structure gathering, which may need the internet for `mp`) run in the main
# Snakemake process, not as cluster jobs: each cluster job pays a submission and the first status poll.
localrules:
    all,
    feff_all,
    structures,
    dataset_card,
    benchmark,
    expert_vs_joint,
    benchmark_seeds,
    diffusion_report,


include: "workflow/rules/common.smk"
include: "workflow/rules/structures.smk"
include: "workflow/rules/sites.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/reports.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/diffusion.smk"


rule all:
    default_target: True
    input:
        report_targets(),
        baseline_metrics,


# FEFF for every structure and nothing downstream: the long dataset-generation run (resumable).
rule feff_all:
    input:
        all_feff,
