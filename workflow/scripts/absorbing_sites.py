from xasengine.stages import absorbing_sites_stage
from xasengine.workflow import run_rule

run_rule(snakemake, absorbing_sites_stage, snakemake.input[0], snakemake.output, snakemake.params.sites,
         snakemake.config["feff"], snakemake.params.workroot)
