from xasengine.stages import feff_stage
from xasengine.workflow import run_rule

run_rule(snakemake, feff_stage, snakemake.input.structure, snakemake.input.sites, snakemake.output[0],
         snakemake.params.cfg, snakemake.params.workroot)
