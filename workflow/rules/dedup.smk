# Rules of the dedup part (see docs/architecture.md), in stages whose memory is bounded: MinHash
# signatures and band keys per shard, LSH candidates per bucket (a slice of the band keys of every
# shard, never text), then one small job that confirms candidates and joins copies (config `dedup`).


rule minhash:
    input:
        corpus=PATHS.corpus,
    output:
        signatures=PATHS.signatures,
        bands=PATHS.bands,
    log:
        PATHS.log("minhash/{shard}"),
    benchmark:
        PATHS.benchmark("minhash/{shard}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("minhash")
    resources:
        **PLAN.resources("minhash"),
    params:
        # Without `buckets`: splitting the band keys otherwise must not re-hash the corpus.
        settings=PLAN.minhash_settings,
    script:
        "../scripts/minhash.py"


rule dedup_bucket:
    input:
        bands=expand(PATHS.bands, shard=SHARDS),
    output:
        pairs=PATHS.dedup_pairs,
    log:
        PATHS.log("dedup_bucket/{bucket}"),
    benchmark:
        PATHS.benchmark("dedup_bucket/{bucket}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("dedup_bucket")
    resources:
        **PLAN.resources("dedup_bucket"),
    params:
        settings=config["dedup"],
        buckets=len(PLAN.dedup_buckets),
    script:
        "../scripts/dedup_bucket.py"


rule dedup:
    input:
        pairs=expand(PATHS.dedup_pairs, bucket=PLAN.dedup_buckets),
        signatures=expand(PATHS.signatures, shard=SHARDS),
    output:
        duplicates=PATHS.duplicates,
    log:
        PATHS.log("dedup/dedup"),
    benchmark:
        PATHS.benchmark("dedup/dedup")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("dedup")
    resources:
        **PLAN.resources("dedup"),
    params:
        settings=config["dedup"],
    script:
        "../scripts/dedup.py"
