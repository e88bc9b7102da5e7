# Rules of the filtering part (see docs/architecture.md): quality filters, duplicates and clusters
# per shard, then a report that counts rows per filter and checks that every corpus row is kept or
# rejected.


rule filter:
    input:
        corpus="results/corpus/{shard}.parquet",
        duplicates="results/dedup/duplicates.parquet",
        clusters="results/clusters/assignments/{shard}.parquet",
        all_clusters=PLAN.cap_assignments(),
    output:
        kept="results/filtered/{shard}.parquet",
        rejects="results/filtered/rejects/{shard}.parquet",
    log:
        "logs/filter/{shard}.log",
    benchmark:
        "benchmarks/filter/{shard}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: 1
    resources:
        mem_mb=DATA_MEM_MB["filter"],
    params:
        settings=config["filter"],
        seed=config["seed"],
    script:
        "../scripts/filter.py"


rule filter_report:
    input:
        corpus=expand("results/corpus/{shard}.parquet", shard=SHARDS),
        kept=expand("results/filtered/{shard}.parquet", shard=SHARDS),
        rejects=expand("results/filtered/rejects/{shard}.parquet", shard=SHARDS),
    output:
        report(
            "results/filtered/filter_report.tsv",
            caption="../report/filter_report.rst",
            category="Corpus",
            subcategory="Filter",
        ),
    log:
        "logs/filter_report/filter_report.log",
    benchmark:
        "benchmarks/filter_report/filter_report.tsv"
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    resources:
        mem_mb=DATA_MEM_MB["filter_report"],
    script:
        "../scripts/filter_report.py"
