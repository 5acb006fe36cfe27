from xasengine.stages import train_stage
from xasengine.workflow import run_rule

descriptor = snakemake.wildcards.get("descriptor")
run_rule(snakemake, train_stage, list(snakemake.input.shards), snakemake.wildcards.group,
         snakemake.output.checkpoint, snakemake.output.summary, snakemake.params.cfg,
         [descriptor] if descriptor else None)
