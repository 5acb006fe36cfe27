from xasengine.stages import evaluate_diffusion_stage
from xasengine.workflow import run_rule

spt = list(snakemake.input.spt)
run_rule(snakemake, evaluate_diffusion_stage, list(snakemake.input.shards), list(snakemake.input.environments),
         snakemake.input.checkpoint, spt[0] if spt else None, snakemake.params.cfg, snakemake.output.metrics,
         snakemake.output.samples)
