# SPT (joint multi-target and per-descriptor experts) and the baseline families, per site group.


rule train_spt:
    input:
        shards=shard_paths,
    output:
        checkpoint="results/models/spt-joint-{group}.pt",
        summary="results/models/spt-joint-{group}.json",
    log:
        "results/logs/models/spt-joint-{group}.log",
    benchmark:
        "results/benchmarks/models/spt-joint-{group}.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        **training_resources(),
    params:
        cfg=config["train"],
    script:
        "../scripts/train_spt.py"


rule train_spt_expert:
    input:
        shards=shard_paths,
    output:
        checkpoint="results/models/spt-expert-{group}-{descriptor}.pt",
        summary="results/models/spt-expert-{group}-{descriptor}.json",
    log:
        "results/logs/models/spt-expert-{group}-{descriptor}.log",
    benchmark:
        "results/benchmarks/models/spt-expert-{group}-{descriptor}.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        **training_resources(),
    params:
        cfg=config["train"],
    script:
        "../scripts/train_spt.py"


rule evaluate_spt:
    input:
        shards=shard_paths,
        checkpoint="results/models/spt-{mode}.pt",
    output:
        "results/metrics/spt-{mode}.json",
    log:
        "results/logs/metrics/spt-{mode}.log",
    conda:
        ENV
    script:
        "../scripts/evaluate_spt.py"


# Every baseline family through one rule (xasengine.models.family); {model} is constrained to benchmark.models.
rule train_baseline:
    input:
        shards=shard_paths,
    output:
        model="results/models/{model}-{group}.joblib",
        metrics="results/metrics/{model}-{group}.json",
    log:
        "results/logs/models/{model}-{group}.log",
    benchmark:
        "results/benchmarks/models/{model}-{group}.tsv"
    wildcard_constraints:
        model=BASELINE_PATTERN,
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        runtime=config["resources"]["train_runtime"],
    params:
        cfg=family_cfg,
    script:
        "../scripts/train_baseline.py"


# `snakemake benchmark_seeds`: the stochastic families and the joint SPT retrained per seed (metrics only).
rule seed_run:
    input:
        shards=shard_paths,
    output:
        metrics="results/seeds/{model}-{group}-seed{seed}.json",
    log:
        "results/logs/seeds/{model}-{group}-seed{seed}.log",
    benchmark:
        "results/benchmarks/seeds/{model}-{group}-seed{seed}.tsv"
    wildcard_constraints:
        model=SEED_PATTERN,
        seed="[0-9]+",
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        runtime=config["resources"]["train_runtime"],
    params:
        cfg=family_cfg,
    script:
        "../scripts/train_baseline.py"


rule benchmark_seeds:
    input:
        metrics=seed_runs("results/seeds/{model}-{group}-seed{seed}.json"),
        benchmarks=seed_runs("results/benchmarks/seeds/{model}-{group}-seed{seed}.tsv"),
    output:
        json="results/reports/benchmark_seeds.json",
        md=report(
            "results/reports/benchmark_seeds.md",
            category="Models",
            caption="../report/benchmark_seeds.rst",
        ),
    log:
        "results/logs/benchmark_seeds.log",
    conda:
        ENV
    script:
        "../scripts/benchmark_seeds.py"


# The joint SPT fine-tuned on the amorphous-train cells (issue 12); the amorphous report scores it.
rule finetune_spt:
    input:
        shards=shard_paths,
        checkpoint="results/models/spt-joint-{group}.pt",
    output:
        checkpoint="results/models/spt-amorphous-{group}.pt",
        summary="results/models/spt-amorphous-{group}.json",
    log:
        "results/logs/models/spt-amorphous-{group}.log",
    benchmark:
        "results/benchmarks/models/spt-amorphous-{group}.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    params:
        amo={k: config["amorphous"][k] for k in ("finetune_epochs", "finetune_lr")},
    script:
        "../scripts/finetune_spt.py"


# Shape x edge fusion for measured scans (xasengine.edge_map): FEFF's edges per OS and the measured-to-FEFF map
# fitted on the measured standards; beside the checkpoints, so `xasengine predict --model results/models` uses it.
rule edge_map:
    input:
        shards=shard_paths,
        standards=config["reports"]["measured"]["standards"],
        scans=measured_scans,
    output:
        "results/models/edge_map.json",
    log:
        "results/logs/models/edge_map.log",
    conda:
        ENV
    params:
        spectra=config["spectra"],
        version=EDGE_MAP_VERSION,  # a new field of the map rebuilds it
    script:
        "../scripts/edge_map.py"
