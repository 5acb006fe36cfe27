from xasengine.stages import finetune_stage
from xasengine.workflow import run_rule

run_rule(snakemake, finetune_stage, list(snakemake.input.shards), snakemake.input.checkpoint,
         snakemake.output.checkpoint, snakemake.output.summary, snakemake.params.amo)
