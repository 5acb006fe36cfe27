rule sites:
    input:
        STRUCTURE_JSON,
    output:
        "results/sites/{sid}.json",
    params:
        cfg=config["sites"],
    log:
        "results/logs/sites/{sid}.log",
    conda:
        ENV
    script:
        "../scripts/sites.py"
