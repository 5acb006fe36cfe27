from xasengine.stages import delithiation_stage
from xasengine.workflow import run_rule

run_rule(snakemake, delithiation_stage, list(snakemake.input.shards), snakemake.input.spt,
         list(snakemake.input.baselines), snakemake.input.benchmark, list(snakemake.input.structures),
         snakemake.params.family, dict(snakemake.output))
