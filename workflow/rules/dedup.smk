# Rules of the dedup part (see docs/architecture.md): MinHash signatures per shard, then exact and
# near-duplicate detection over all signatures in one job (settings: config `dedup`).


rule minhash:
    input:
        corpus=PATHS.corpus,
    output:
        signatures=PATHS.signatures,
    log:
        PATHS.log("minhash/{shard}"),
    benchmark:
        PATHS.benchmark("minhash/{shard}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("minhash")
    params:
        settings=config["dedup"],
    script:
        "../scripts/minhash.py"


rule dedup:
    input:
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
