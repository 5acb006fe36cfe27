# SPT (joint multi-target and per-descriptor experts) and the random-forest baseline, per site group.


rule train_spt:
    input:
        shards=shard_paths,
    output:
        checkpoint="results/models/spt-joint-{group}.pt",
        summary="results/models/spt-joint-{group}.json",
    params:
        cfg=config["train"],
    resources:
        **training_resources(),
    threads: config["resources"]["train_threads"]
    log:
        "results/logs/models/spt-joint-{group}.log",
    conda:
        ENV
    script:
        "../scripts/train_spt.py"


rule train_spt_expert:
    input:
        shards=shard_paths,
    output:
        checkpoint="results/models/spt-expert-{group}-{descriptor}.pt",
        summary="results/models/spt-expert-{group}-{descriptor}.json",
    params:
        cfg=config["train"],
    resources:
        **training_resources(),
    threads: config["resources"]["train_threads"]
    log:
        "results/logs/models/spt-expert-{group}-{descriptor}.log",
    conda:
        ENV
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


rule baseline_rf:
    input:
        shards=shard_paths,
    output:
        model="results/models/rf-{group}.joblib",
        metrics="results/metrics/rf-{group}.json",
    params:
        cfg=config["train"]["rf"],
    threads: config["resources"]["train_threads"]
    log:
        "results/logs/models/rf-{group}.log",
    conda:
        ENV
    script:
        "../scripts/baseline_rf.py"


rule metrics_table:
    input:
        metrics_inputs,
    output:
        table=report("results/reports/metrics.md", category="Models", caption="../report/metrics.rst"),
        figure=report("results/reports/metrics.png", category="Models", caption="../report/metrics.rst"),
        json="results/reports/metrics.json",
    log:
        "results/logs/metrics_table.log",
    conda:
        ENV
    script:
        "../scripts/metrics_table.py"
