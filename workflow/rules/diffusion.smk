# Equivariant diffusion (xasengine.models.diffusion): coordination shells generated from spectra, scored on the
# material-wise test split against template matching, the unconditioned prior and the SPT's CN.


rule environments:
    input:
        shard="results/shards/shard-{bucket}.h5",
        structures=lambda wc: [
            STRUCTURE_JSON.format(sid=s) for s in buckets()[int(wc.bucket)]
        ],
    output:
        "results/environments/env-{bucket}.h5",
    log:
        "results/logs/environments/env-{bucket}.log",
    conda:
        ENV
    params:
        cfg=environment_cfg(),
    script:
        "../scripts/environments.py"


rule train_diffusion:
    input:
        shards=shard_paths,
        environments=environment_paths,
    output:
        checkpoint="results/models/diffusion.pt",
        summary="results/models/diffusion.json",
    log:
        "results/logs/models/diffusion.log",
    benchmark:
        "results/benchmarks/models/diffusion.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    resources:
        **training_resources(),
    params:
        cfg=diffusion_train_cfg(),
    script:
        "../scripts/train_diffusion.py"


rule evaluate_diffusion:
    input:
        shards=shard_paths,
        environments=environment_paths,
        checkpoint="results/models/diffusion.pt",
        spt=spt_for_diffusion,
    output:
        metrics="results/metrics/diffusion.json",
        samples="results/diffusion/samples.h5",
    log:
        "results/logs/metrics/diffusion.log",
    benchmark:
        "results/benchmarks/metrics/diffusion.tsv"
    conda:
        ENV
    threads: config["resources"]["train_threads"]
    params:
        cfg=config["diffusion"],
        sampling_version=DIFFUSION_SAMPLING_VERSION,  # a changed sampler default re-samples
    script:
        "../scripts/evaluate_diffusion.py"


# FEFF on generated and true K-atom shells of a few test sites (engine runner + cache): do they give back the spectrum?
rule diffusion_consistency:
    input:
        samples="results/diffusion/samples.h5",
        shards=shard_paths,
    output:
        "results/metrics/diffusion_consistency.json",
    log:
        "results/logs/metrics/diffusion_consistency.log",
    benchmark:
        "results/benchmarks/metrics/diffusion_consistency.tsv"
    conda:
        ENV
    params:
        n_sites=config["diffusion"]["consistency_sites"],
        feff=feff_data_config(),
        spectra=config["spectra"],
        workroot="results/feff_work/diffusion",
    script:
        "../scripts/diffusion_consistency.py"


rule diffusion_report:
    input:
        metrics="results/metrics/diffusion.json",
        samples="results/diffusion/samples.h5",
        consistency=consistency_if_enabled,
    output:
        html=report(
            "results/reports/diffusion.html",
            category="Diffusion",
            caption="../report/diffusion.rst",
        ),
        histograms=report(
            "results/reports/diffusion_histograms.png",
            category="Diffusion",
            caption="../report/diffusion_histograms.rst",
        ),
        shells=report(
            "results/reports/diffusion_shells.png",
            category="Diffusion",
            caption="../report/diffusion_shells.rst",
        ),
        json="results/reports/diffusion.json",
    log:
        "results/logs/reports/diffusion.log",
    conda:
        ENV
    script:
        "../scripts/diffusion_report.py"
