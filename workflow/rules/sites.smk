# One job per structure: its symmetry-nonequivalent absorbing sites, their descriptors and their FEFF10 spectra
# (each site looked up in the FEFF cache first). One process per structure keeps per-job start-up small.
rule absorbing_sites:
    input:
        STRUCTURE_JSON,
    output:
        sites="results/sites/{sid}.json",
        descriptors="results/descriptors/{sid}.json",
        feff="results/feff/{sid}.json",
    log:
        "results/logs/sites/{sid}.log",
    group:
        "feff"  # on a cluster, the profile's group-components packs several structures into one submission
    conda:
        ENV
    resources:
        runtime=config["resources"]["feff_runtime"],
        mem_mb=config["resources"]["feff_mem_mb"],
    params:
        sites=config["sites"],
        feff_data=feff_data_config(),  # only triggers reruns: the job reads all of config["feff"]
        workroot="results/feff_work",
    script:
        "../scripts/absorbing_sites.py"
