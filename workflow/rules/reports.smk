rule dataset_card:
    input:
        shards=shard_paths,
        structure_failures="results/structures/failures.tsv",
    output:
        card="results/reports/dataset_card.md",
        summary="results/reports/dataset_card.json",
        split="results/reports/split.tsv",
        failures=report("results/reports/failures.tsv", category="Dataset", caption="../report/failures.rst"),
        spectra=report("results/reports/example_spectra.png", category="Dataset", caption="../report/spectra.rst"),
        counts=report("results/reports/counts.png", category="Dataset", caption="../report/counts.rst"),
    params:
        allowed_elements=config["structures"]["allowed_elements"],
    log:
        "results/logs/dataset_card.log",
    conda:
        ENV
    script:
        "../scripts/dataset_card.py"
