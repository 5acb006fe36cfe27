from xasengine.stages import diffusion_consistency_stage
from xasengine.workflow import run_rule

run_rule(snakemake, diffusion_consistency_stage, snakemake.input.samples, list(snakemake.input.shards),
         snakemake.params.n_sites, snakemake.config["feff"], snakemake.params.spectra, snakemake.params.workroot,
         snakemake.output[0])
