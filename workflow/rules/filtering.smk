# Rules of the filtering part (see docs/architecture.md): quality filters, duplicates and clusters
# per shard, then a report that counts rows per filter and checks that every corpus row is kept or
# rejected.


rule filter:
    input:
        corpus=PATHS.corpus,
        duplicates=PATHS.duplicates,
        clusters=PATHS.cluster_assignments,
        all_clusters=PLAN.cap_assignments(),
    output:
        kept=PATHS.filtered,
        rejects=PATHS.filter_rejects,
    log:
        PATHS.log("filter/{shard}"),
    benchmark:
        PATHS.benchmark("filter/{shard}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("filter")
    resources:
        **PLAN.resources("filter"),
    params:
        settings=config["filter"],
        seed=config["seed"],
    script:
        "../scripts/filter.py"


rule filter_report:
    input:
        corpus=expand(PATHS.corpus, shard=SHARDS),
        kept=expand(PATHS.filtered, shard=SHARDS),
        rejects=expand(PATHS.filter_rejects, shard=SHARDS),
    output:
        report(
            PATHS.filter_report,
            caption="../report/filter_report.rst",
            category="Corpus",
            subcategory="Filter",
        ),
    log:
        PATHS.log("filter_report/filter_report"),
    benchmark:
        PATHS.benchmark("filter_report/filter_report")
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("filter_report"),
    script:
        "../scripts/filter_report.py"
