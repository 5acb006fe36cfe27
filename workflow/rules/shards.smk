rule shard:
    input:
        unpack(shard_inputs),
    output:
        "results/shards/shard-{bucket}.h5",
    log:
        "results/logs/shards/shard-{bucket}.log",
    conda:
        ENV
    params:
        config={k: config[k] for k in ("sites", "spectra", "shards", "split")}
        | {"feff": feff_data_config()},
        ids=lambda wc: buckets()[int(wc.bucket)],
    script:
        "../scripts/shard.py"
