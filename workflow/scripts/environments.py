from xasengine.stages import environments_stage
from xasengine.workflow import run_rule

run_rule(snakemake, environments_stage, snakemake.input.shard, list(snakemake.input.structures), snakemake.output[0],
         snakemake.params.cfg)
