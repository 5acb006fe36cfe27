checkpoint structures:
    input:
        amorphous=amorphous_cells,
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
        amorphous=amorphous_record_cfg(),
    script:
        "../scripts/structures.py"


# One amorphous cell (melt-quench MD with CHGNet): shipped first, then results/amorphous_cache, else MD
# (refused when amorphous.shipped_only). With amorphous.enabled the structures checkpoint gathers them.
rule amorphous_cell:
    output:
        "results/amorphous/cells/{formula}-s{seed}.json",
    log:
        "results/logs/amorphous/{formula}-s{seed}.log",
    benchmark:
        "results/benchmarks/amorphous/{formula}-s{seed}.tsv"
    wildcard_constraints:
        seed=r"\d+",
    conda:
        ENV
    params:
        amo=config["amorphous"],
    script:
        "../scripts/amorphous_cell.py"


rule amorphous_cells:
    input:
        expand(
            "results/amorphous/cells/{formula}-s{seed}.json",
            formula=config["amorphous"]["compositions"],
            seed=config["amorphous"]["seeds"],
        ),
