from xasengine.stages import sites_stage
from xasengine.workflow import run_rule

run_rule(snakemake, sites_stage, snakemake.input[0], snakemake.output[0], snakemake.params.cfg)
