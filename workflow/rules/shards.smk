rule shard:
    input:
        unpack(shard_inputs),
    output:
        "results/shards/shard-{bucket}.h5",
    params:
        config={k: config[k] for k in ("sites", "spectra", "shards", "split")} | {"feff": feff_data_config()},
        ids=lambda wc: buckets()[int(wc.bucket)],
    log:
        "results/logs/shards/shard-{bucket}.log",
    conda:
        ENV
    script:
        "../scripts/shard.py"
