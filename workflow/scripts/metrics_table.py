from xasengine.reports.metrics_table import write_metrics_table
from xasengine.workflow import run_rule

run_rule(snakemake, write_metrics_table, list(snakemake.input), dict(snakemake.output))
