# Rules of the dedup part (see docs/architecture.md): MinHash signatures per shard, then exact and
# near-duplicate detection over all signatures in one job (settings: config `dedup`).


rule minhash:
    input:
        corpus="results/corpus/{shard}.parquet",
    output:
        signatures="results/dedup/signatures/{shard}.parquet",
    log:
        "logs/minhash/{shard}.log",
    benchmark:
        "benchmarks/minhash/{shard}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("minhash")
    params:
        settings=config["dedup"],
    script:
        "../scripts/minhash.py"


rule dedup:
    input:
        signatures=expand("results/dedup/signatures/{shard}.parquet", shard=SHARDS),
    output:
        duplicates="results/dedup/duplicates.parquet",
    log:
        "logs/dedup/dedup.log",
    benchmark:
        "benchmarks/dedup/dedup.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("dedup")
    resources:
        **PLAN.resources("dedup"),
    params:
        settings=config["dedup"],
    script:
        "../scripts/dedup.py"
