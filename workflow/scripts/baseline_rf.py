from xasengine.stages import baseline_stage
from xasengine.workflow import run_rule

run_rule(snakemake, baseline_stage, list(snakemake.input.shards), snakemake.wildcards.group,
         snakemake.output.model, snakemake.output.metrics, snakemake.params.cfg, snakemake.threads)
