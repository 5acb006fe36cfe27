from xasengine.stages import robustness_stage
from xasengine.workflow import run_rule

run_rule(snakemake, robustness_stage, list(snakemake.input.shards), list(snakemake.input.models), snakemake.params.cfg,
         dict(snakemake.output))
