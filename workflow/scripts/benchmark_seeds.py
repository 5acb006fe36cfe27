from xasengine.stages import benchmark_seeds_stage
from xasengine.workflow import run_rule

run_rule(snakemake, benchmark_seeds_stage, list(snakemake.input.metrics), list(snakemake.input.benchmarks),
         snakemake.output.json, snakemake.output.md)
