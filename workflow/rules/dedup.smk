# Rules of the dedup part (see docs/architecture.md), in stages whose memory is bounded: MinHash
# signatures and band keys per shard, LSH candidates per bucket (a slice of the band keys of every
# shard, never text), then one small job that confirms candidates and joins copies (config `dedup`).


rule minhash:
    input:
        corpus="results/corpus/{shard}.parquet",
    output:
        signatures="results/dedup/signatures/{shard}.parquet",
        bands="results/dedup/bands/{shard}.parquet",
    log:
        "logs/minhash/{shard}.log",
    benchmark:
        "benchmarks/minhash/{shard}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: 1
    resources:
        mem_mb=DATA_MEM_MB["minhash"],
    params:
        # Without `buckets`: splitting the band keys otherwise must not re-hash the corpus.
        settings={
            key: value for key, value in config["dedup"].items() if key != "buckets"
        },
    script:
        "../scripts/minhash.py"


rule dedup_bucket:
    input:
        bands=expand("results/dedup/bands/{shard}.parquet", shard=SHARDS),
    output:
        pairs="results/dedup/pairs/{bucket}.parquet",
    log:
        "logs/dedup_bucket/{bucket}.log",
    benchmark:
        "benchmarks/dedup_bucket/{bucket}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: 1
    resources:
        mem_mb=DATA_MEM_MB["dedup_bucket"],
    params:
        settings=config["dedup"],
        buckets=len(DEDUP_BUCKETS),
    script:
        "../scripts/dedup_bucket.py"


rule dedup:
    input:
        pairs=expand("results/dedup/pairs/{bucket}.parquet", bucket=DEDUP_BUCKETS),
        signatures=expand("results/dedup/signatures/{shard}.parquet", shard=SHARDS),
    output:
        duplicates="results/dedup/duplicates.parquet",
    log:
        "logs/dedup/dedup.log",
    benchmark:
        "benchmarks/dedup/dedup.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: 1
    resources:
        mem_mb=DATA_MEM_MB["dedup"],
    params:
        settings=config["dedup"],
    script:
        "../scripts/dedup.py"
