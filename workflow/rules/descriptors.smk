rule descriptors:
    input:
        structure=STRUCTURE_JSON,
        sites="results/sites/{sid}.json",
    output:
        "results/descriptors/{sid}.json",
    params:
        symprec=config["sites"]["symprec"],
    log:
        "results/logs/descriptors/{sid}.log",
    conda:
        ENV
    script:
        "../scripts/descriptors.py"
