# Rules of the clustering part (see docs/architecture.md): fit on a seeded sample of the whole
# corpus, assign every shard (and count its share of the description), then describe the clusters
# from those counts (topic table, map, shares by a metadata column).


rule cluster_fit:
    input:
        corpus=expand(PATHS.corpus, shard=SHARDS),
    output:
        model=PATHS.cluster_model,
    log:
        PATHS.log("cluster_fit/cluster_fit"),
    benchmark:
        PATHS.benchmark("cluster_fit/cluster_fit")
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("cluster_fit"),
    params:
        settings=config["cluster"],
        seed=config["seed"],
    script:
        "../scripts/cluster_fit.py"


rule cluster_assign:
    input:
        model=PATHS.cluster_model,
        corpus=PATHS.corpus,
    output:
        assignments=PATHS.cluster_assignments,
        terms=PATHS.cluster_terms,
        bins=PATHS.cluster_bins,
        examples=PATHS.cluster_examples,
    log:
        PATHS.log("cluster_assign/{shard}"),
    benchmark:
        PATHS.benchmark("cluster_assign/{shard}")
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("cluster_assign"),
    params:
        settings=config["cluster"],
    script:
        "../scripts/cluster_assign.py"


rule cluster_summary:
    input:
        model=PATHS.cluster_model,
        terms=expand(PATHS.cluster_terms, shard=SHARDS),
        bins=expand(PATHS.cluster_bins, shard=SHARDS),
        examples=expand(PATHS.cluster_examples, shard=SHARDS),
        # Read only for the map's seeded sample of texts.
        corpus=expand(PATHS.corpus, shard=SHARDS),
    output:
        summary=report(
            PATHS.cluster_summary,
            caption="../report/clusters_summary.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
        map=report(
            PATHS.cluster_map,
            caption="../report/clusters_map.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
        shares=report(
            PATHS.cluster_shares,
            caption="../report/clusters_shares.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
        shares_png=report(
            PATHS.cluster_shares_png,
            caption="../report/clusters_shares.rst",
            category="Corpus",
            subcategory="Clusters",
        ),
    log:
        PATHS.log("cluster_summary/cluster_summary"),
    benchmark:
        PATHS.benchmark("cluster_summary/cluster_summary")
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("cluster_summary"),
    params:
        settings=config["cluster"],
        seed=config["seed"],
    script:
        "../scripts/cluster_summary.py"
