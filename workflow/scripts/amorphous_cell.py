from xasengine.structures.amorphous import write_amorphous_cell
from xasengine.workflow import run_rule

run_rule(snakemake, write_amorphous_cell, snakemake.wildcards.formula, int(snakemake.wildcards.seed),
         snakemake.params.amo, snakemake.output[0])
