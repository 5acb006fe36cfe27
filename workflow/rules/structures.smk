checkpoint structures:
    output:
        index="results/structures/index.tsv",
        failures="results/structures/failures.tsv",
    params:
        options=config["structures"],
        json_dir="results/structures/json",
    log:
        "results/logs/structures.log",
    conda:
        ENV
    script:
        "../scripts/structures.py"
