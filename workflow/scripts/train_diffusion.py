from xasengine.stages import train_diffusion_stage
from xasengine.workflow import run_rule

run_rule(snakemake, train_diffusion_stage, list(snakemake.input.shards), list(snakemake.input.environments),
         snakemake.output.checkpoint, snakemake.output.summary, snakemake.params.cfg)
