# Rules of the clustering part (see docs/architecture.md): fit on a seeded sample of the whole
# corpus, assign every shard (and count its share of the description), then describe the clusters
# from those counts (topic table, map, shares by a metadata column).


rule cluster_fit:
    input:
        corpus=expand("results/corpus/{shard}.parquet", shard=SHARDS),
    output:
        model="results/clusters/model.pkl",
    log:
        "logs/cluster_fit/cluster_fit.log",
    benchmark:
        "benchmarks/cluster_fit/cluster_fit.tsv"
    conda:
        "../../envs/locallm.yaml"
    resources:
        mem_mb=DATA_MEM_MB["cluster_fit"],
    params:
        settings=config["cluster"],
        seed=config["seed"],
    script:
        "../scripts/cluster_fit.py"


rule cluster_assign:
    input:
        model="results/clusters/model.pkl",
        corpus="results/corpus/{shard}.parquet",
    output:
        assignments="results/clusters/assignments/{shard}.parquet",
        terms="results/clusters/partial/terms/{shard}.parquet",
        bins="results/clusters/partial/bins/{shard}.parquet",
        examples="results/clusters/partial/examples/{shard}.parquet",
    log:
        "logs/cluster_assign/{shard}.log",
    benchmark:
        "benchmarks/cluster_assign/{shard}.tsv"
    conda:
        "../../envs/locallm.yaml"
    resources:
        mem_mb=DATA_MEM_MB["cluster_assign"],
    params:
        settings=config["cluster"],
    script:
        "../scripts/cluster_assign.py"


rule cluster_summary:
    input:
        model="results/clusters/model.pkl",
        terms=expand("results/clusters/partial/terms/{shard}.parquet", shard=SHARDS),
        bins=expand("results/clusters/partial/bins/{shard}.parquet", shard=SHARDS),
        examples=expand(
            "results/clusters/partial/examples/{shard}.parquet", shard=SHARDS
        ),
        # Read only for the map's seeded sample of texts.
        corpus=expand("results/corpus/{shard}.parquet", shard=SHARDS),
    output:
        summary=report(
            "results/clusters/summary.tsv",
            caption="../report/clusters_summary.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
        map=report(
            "results/clusters/map.png",
            caption="../report/clusters_map.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
        shares=report(
            "results/clusters/shares.tsv",
            caption="../report/clusters_shares.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
        shares_png=report(
            "results/clusters/shares.png",
            caption="../report/clusters_shares.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
    log:
        "logs/cluster_summary/cluster_summary.log",
    benchmark:
        "benchmarks/cluster_summary/cluster_summary.tsv"
    conda:
        "../../envs/locallm.yaml"
    resources:
        mem_mb=DATA_MEM_MB["cluster_summary"],
    params:
        settings=config["cluster"],
        seed=config["seed"],
    script:
        "../scripts/cluster_summary.py"
