from xasengine.structures.collect import write_structures
from xasengine.workflow import run_rule

run_rule(snakemake, write_structures, snakemake.params.options, snakemake.params.json_dir,
         snakemake.output.index, snakemake.output.failures, list(snakemake.input.amorphous),
         snakemake.params.amorphous)
