def shard_inputs(wildcards):
    sids = buckets()[int(wildcards.bucket)]
    return {
        "structures": [STRUCTURE_JSON.format(sid=s) for s in sids],
        "sites": [f"results/sites/{s}.json" for s in sids],
        "descriptors": [f"results/descriptors/{s}.json" for s in sids],
        "feff": [f"results/feff/{s}.json" for s in sids],
    }


rule shard:
    input:
        unpack(shard_inputs),
    output:
        "results/shards/shard-{bucket}.h5",
    params:
        config={k: config[k] for k in ("sites", "feff", "spectra", "shards", "split")},
        ids=lambda wc: buckets()[int(wc.bucket)],
    log:
        "results/logs/shards/shard-{bucket}.log",
    conda:
        ENV
    script:
        "../scripts/shard.py"
