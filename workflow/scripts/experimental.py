from xasengine.stages import experimental_stage
from xasengine.workflow import run_rule

run_rule(snakemake, experimental_stage, snakemake.params.scan_dir, snakemake.input.standards, snakemake.input.spt,
         list(snakemake.input.shards), snakemake.params.spectra, dict(snakemake.output))
