from xasengine.stages import experimental_stage
from xasengine.workflow import run_rule

run_rule(snakemake, experimental_stage, list(snakemake.input.scans), snakemake.input.standards, snakemake.input.spt,
         snakemake.input.edge_map, list(snakemake.input.shards), snakemake.params.spectra, dict(snakemake.output),
         snakemake.params.reading)
