from xasengine.stages import amorphous_stage
from xasengine.workflow import run_rule

run_rule(snakemake, amorphous_stage, list(snakemake.input.shards), list(snakemake.input.crystal),
         list(snakemake.input.finetuned), list(snakemake.input.baselines), snakemake.input.benchmark,
         dict(snakemake.output))
