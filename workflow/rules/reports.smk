rule dataset_card:
    input:
        shards=shard_paths,
        structure_failures="results/structures/failures.tsv",
    output:
        card="results/reports/dataset_card.md",
        summary="results/reports/dataset_card.json",
        split="results/reports/split.tsv",
        failures=report(
            "results/reports/failures.tsv",
            category="Dataset",
            caption="../report/failures.rst",
        ),
        spectra=report(
            "results/reports/example_spectra.png",
            category="Dataset",
            caption="../report/spectra.rst",
        ),
        counts=report(
            "results/reports/counts.png",
            category="Dataset",
            caption="../report/counts.rst",
        ),
    log:
        "results/logs/dataset_card.log",
    conda:
        ENV
    params:
        allowed_elements=config["structures"]["allowed_elements"],
    script:
        "../scripts/dataset_card.py"


# The comparison of the SPT paper (Figure 7, 8; §2.2, §4.4) on this dataset: xasengine.reports.*
rule benchmark:
    input:
        metrics=benchmark_inputs,
        seeds=seed_summary_if_built,
    output:
        html=report(
            "results/reports/benchmark.html",
            category="Benchmark",
            caption="../report/benchmark.rst",
        ),
        radar=report(
            "results/reports/benchmark_radar.png",
            category="Benchmark",
            caption="../report/radar.rst",
        ),
        json="results/reports/benchmark.json",
        csv="results/reports/benchmark.csv",
        times_csv="results/reports/benchmark_times.csv",
    log:
        "results/logs/reports/benchmark.log",
    conda:
        ENV
    script:
        "../scripts/benchmark.py"


rule robustness:
    input:
        shards=shard_paths,
        models=report_models,
    output:
        noise=report(
            "results/reports/robustness_noise.png",
            category="Robustness",
            caption="../report/robustness.rst",
        ),
        shift=report(
            "results/reports/robustness_shift.png",
            category="Robustness",
            caption="../report/robustness.rst",
        ),
        broadening=report(
            "results/reports/robustness_broadening.png",
            category="Robustness",
            caption="../report/robustness.rst",
        ),
        json="results/reports/robustness.json",
        csv="results/reports/robustness.csv",
    log:
        "results/logs/reports/robustness.log",
    benchmark:
        "results/benchmarks/reports/robustness.tsv"
    conda:
        ENV
    params:
        # only the sweep's own knobs: a change elsewhere in reports (e.g. reports.measured) reruns no sweep
        cfg={k: config["reports"][k] for k in ROBUSTNESS_KNOBS},
    script:
        "../scripts/robustness.py"


rule expert_vs_joint:
    input:
        joint=lambda wildcards: spt_metrics("joint"),
        experts=lambda wildcards: spt_metrics("expert"),
    output:
        html=report(
            "results/reports/expert_vs_joint.html",
            category="Expert vs joint",
            caption="../report/expert_vs_joint.rst",
        ),
        figure=report(
            "results/reports/expert_vs_joint.png",
            category="Expert vs joint",
            caption="../report/expert_vs_joint.rst",
        ),
        json="results/reports/expert_vs_joint.json",
        csv="results/reports/expert_vs_joint.csv",
    log:
        "results/logs/reports/expert_vs_joint.log",
    conda:
        ENV
    script:
        "../scripts/expert_vs_joint.py"


rule umap_embed:
    input:
        shards=shard_paths,
        checkpoint="results/models/spt-joint-{group}.pt",
    output:
        figure=report(
            "results/reports/umap-{group}.png",
            category="UMAP",
            caption="../report/umap.rst",
            labels={"site group": "{group}"},
        ),
        json="results/reports/umap-{group}.json",
    log:
        "results/logs/reports/umap-{group}.log",
    benchmark:
        "results/benchmarks/reports/umap-{group}.tsv"
    conda:
        ENV
    params:
        cfg=config["reports"]["umap"],
    script:
        "../scripts/umap_embed.py"


rule delithiation:
    input:
        shards=shard_paths,
        spt="results/models/spt-joint-nonO.pt",
        baselines=expand(
            "results/models/{model}-nonO.joblib", model=config["benchmark"]["models"]
        ),
        benchmark="results/reports/benchmark.json",
        structures=delithiation_structures,
    output:
        html=report(
            "results/reports/delithiation.html",
            category="Delithiation",
            caption="../report/delithiation.rst",
        ),
        oxidation=report(
            "results/reports/delithiation_os.png",
            category="Delithiation",
            caption="../report/delithiation.rst",
        ),
        confusion=report(
            "results/reports/delithiation_confusion.png",
            category="Delithiation",
            caption="../report/delithiation.rst",
        ),
        geometry=report(
            "results/reports/delithiation_geometry.png",
            category="Delithiation",
            caption="../report/delithiation.rst",
        ),
        json="results/reports/delithiation.json",
    log:
        "results/logs/reports/delithiation.log",
    conda:
        ENV
    params:
        family=DELITHIATION_FAMILY,
    script:
        "../scripts/delithiation.py"


rule experimental:
    input:
        shards=shard_paths,
        spt="results/models/spt-joint-nonO.pt",
        edge_map="results/models/edge_map.json",
        standards=config["reports"]["measured"]["standards"],
        scans=measured_scans,
    output:
        html=report(
            "results/reports/experimental.html",
            category="Measured spectra",
            caption="../report/experimental.rst",
        ),
        oxidation=report(
            "results/reports/experimental_os.png",
            category="Measured spectra",
            caption="../report/experimental.rst",
        ),
        probabilities=report(
            "results/reports/experimental_probabilities.png",
            category="Measured spectra",
            caption="../report/experimental.rst",
        ),
        spectra=report(
            "results/reports/experimental_spectra.png",
            category="Measured spectra",
            caption="../report/experimental.rst",
        ),
        reliability=report(
            "results/reports/experimental_reliability.png",
            category="Measured spectra",
            caption="../report/experimental.rst",
        ),
        json="results/reports/experimental.json",
        csv="results/reports/experimental.csv",
    log:
        "results/logs/reports/experimental.log",
    conda:
        ENV
    params:
        spectra=config["spectra"],
        reading=config["reports"]["measured"]["reading"],
    script:
        "../scripts/experimental.py"


rule amorphous_report:
    input:
        shards=shard_paths,
        crystal=expand("results/models/spt-joint-{g}.pt", g=config["train"]["groups"]),
        finetuned=finetuned_models,
        baselines=expand(
            "results/models/{model}-{g}.joblib",
            model=config["benchmark"]["models"],
            g=config["train"]["groups"],
        ),
        benchmark="results/reports/benchmark.json",
    output:
        html=report(
            "results/reports/amorphous.html",
            category="Amorphous",
            caption="../report/amorphous.rst",
        ),
        scores=report(
            "results/reports/amorphous_scores.png",
            category="Amorphous",
            caption="../report/amorphous.rst",
        ),
        distributions=report(
            "results/reports/amorphous_distributions.png",
            category="Amorphous",
            caption="../report/amorphous.rst",
        ),
        json="results/reports/amorphous.json",
    log:
        "results/logs/reports/amorphous.log",
    conda:
        ENV
    script:
        "../scripts/amorphous_report.py"
