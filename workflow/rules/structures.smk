checkpoint structures:
    output:
        index="results/structures/index.tsv",
        failures="results/structures/failures.tsv",
    log:
        "results/logs/structures.log",
    conda:
        ENV
    params:
        options=config["structures"],
        json_dir="results/structures/json",
    script:
        "../scripts/structures.py"
