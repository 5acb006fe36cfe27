from xasengine.stages import descriptors_stage
from xasengine.workflow import run_rule

run_rule(snakemake, descriptors_stage, snakemake.input.structure, snakemake.input.sites, snakemake.output[0],
         snakemake.params.symprec)
