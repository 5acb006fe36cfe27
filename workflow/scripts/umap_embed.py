from xasengine.stages import umap_stage
from xasengine.workflow import run_rule

run_rule(snakemake, umap_stage, list(snakemake.input.shards), snakemake.input.checkpoint, snakemake.params.cfg,
         dict(snakemake.output))
