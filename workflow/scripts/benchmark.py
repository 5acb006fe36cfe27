from xasengine.stages import benchmark_stage
from xasengine.workflow import run_rule

run_rule(snakemake, benchmark_stage, list(snakemake.input.metrics), list(snakemake.input.seeds), dict(snakemake.output))
