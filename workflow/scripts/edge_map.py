from xasengine.stages import edge_map_stage
from xasengine.workflow import run_rule

run_rule(snakemake, edge_map_stage, list(snakemake.input.scans), snakemake.input.standards,
         list(snakemake.input.shards), snakemake.params.spectra, snakemake.output[0])
