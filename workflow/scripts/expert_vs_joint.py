from xasengine.stages import expert_vs_joint_stage
from xasengine.workflow import run_rule

run_rule(snakemake, expert_vs_joint_stage, list(snakemake.input.joint), list(snakemake.input.experts),
         dict(snakemake.output))
