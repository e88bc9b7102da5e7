# Rules of the corpus part (see docs/architecture.md): the demo corpus export, ingest per shard, its
# report.


rule export_sotu:
    output:
        SOTU_JSONL,
    log:
        PATHS.log("export_sotu/export_sotu"),
    benchmark:
        PATHS.benchmark("export_sotu/export_sotu")
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/export_sotu.py"


rule ingest:
    input:
        files=PLAN.ingest_files,
    output:
        kept=PATHS.corpus,
        rejects=PATHS.corpus_rejects,
        counts=PATHS.corpus_counts,
    log:
        PATHS.log("ingest/{shard}"),
    benchmark:
        PATHS.benchmark("ingest/{shard}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("ingest")
    resources:
        **PLAN.resources("ingest"),
    params:
        settings=config["corpus"],
        whole_files=PLAN.files_sharded_whole,
    script:
        "../scripts/ingest.py"


rule ingest_report:
    input:
        kept=expand(PATHS.corpus, shard=SHARDS),
        rejects=expand(PATHS.corpus_rejects, shard=SHARDS),
        counts=expand(PATHS.corpus_counts, shard=SHARDS),
    output:
        report(
            PATHS.ingest_report,
            caption="../report/ingest_report.rst",
            category="Corpus",
            subcategory="Ingest",
        ),
    log:
        PATHS.log("ingest_report/ingest_report"),
    benchmark:
        PATHS.benchmark("ingest_report/ingest_report")
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    resources:
        **PLAN.resources("ingest_report"),
    params:
        shards=SHARDS,
    script:
        "../scripts/ingest_report.py"
