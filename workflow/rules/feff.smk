# One job per structure: all its nonequivalent absorbing sites, each looked up in the FEFF cache first.
rule feff:
    input:
        structure=STRUCTURE_JSON,
        sites="results/sites/{sid}.json",
    output:
        "results/feff/{sid}.json",
    params:
        cfg=config["feff"],
        workroot="results/feff_work",
    resources:
        runtime=config["resources"]["feff_runtime"],
        mem_mb=config["resources"]["feff_mem_mb"],
        cpus_per_task=1,
    log:
        "results/logs/feff/{sid}.log",
    conda:
        ENV
    script:
        "../scripts/feff.py"
