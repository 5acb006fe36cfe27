from xasengine.stages import train_baseline_stage
from xasengine.workflow import run_rule

run_rule(snakemake, train_baseline_stage, list(snakemake.input.shards), snakemake.wildcards.model,
         snakemake.wildcards.group, snakemake.output.get("model"), snakemake.output.metrics, snakemake.params.cfg,
         snakemake.threads, int(snakemake.wildcards.get("seed", 0)))
