from xasengine.stages import shard_stage
from xasengine.workflow import run_rule

folders = {"structures": "results/structures/json", "sites": "results/sites",
           "descriptors": "results/descriptors", "feff": "results/feff"}
run_rule(snakemake, shard_stage, snakemake.params.ids, folders, snakemake.output[0], snakemake.params.config)
