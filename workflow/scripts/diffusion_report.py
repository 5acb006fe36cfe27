from xasengine.stages import diffusion_report_stage
from xasengine.workflow import run_rule

consistency = list(snakemake.input.consistency)
run_rule(snakemake, diffusion_report_stage, snakemake.input.metrics, snakemake.input.samples,
         consistency[0] if consistency else None, dict(snakemake.output))
