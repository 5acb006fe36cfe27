from xasengine.stages import evaluate_stage
from xasengine.workflow import run_rule

run_rule(snakemake, evaluate_stage, list(snakemake.input.shards), snakemake.input.checkpoint, snakemake.output[0])
