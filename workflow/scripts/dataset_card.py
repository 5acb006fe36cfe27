from xasengine.reports.dataset_card import write_dataset_card
from xasengine.workflow import run_rule

run_rule(snakemake, write_dataset_card, snakemake.input.shards, snakemake.input.structure_failures,
         dict(snakemake.output), snakemake.params.allowed_elements)
