# Rules of the filtering part (see docs/architecture.md): quality filters, duplicates and clusters
# per shard, then a report that counts rows per filter and checks that every corpus row is kept or
# rejected.


# All shards' cluster assignments when a per-cluster or per-group cap is set (caps count
# corpus-wide).
CAP_ASSIGNMENTS = (
    expand("results/clusters/assignments/{shard}.parquet", shard=SHARDS)
    if config["filter"]["cluster_cap"] is not None
    or config["filter"]["group_cap"] is not None
    else []
)


rule filter:
    input:
        corpus="results/corpus/{shard}.parquet",
        duplicates="results/dedup/duplicates.parquet",
        clusters="results/clusters/assignments/{shard}.parquet",
        all_clusters=CAP_ASSIGNMENTS,
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
    script:
        "../scripts/filter_report.py"
