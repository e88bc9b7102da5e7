# The citable report of a finished run: REFORMS checklist, data card, model cards, environment and
# checksums (docs/reproduce.md), and the replication archive (asked for by name).


rule report:
    input:
        raw=PLAN.corpus_files,
        ingest_report="results/corpus/ingest_report.tsv",
        filter_report="results/filtered/filter_report.tsv",
        split_report="results/splits/split_report.tsv",
        cluster_summary="results/clusters/summary.tsv",
        duplicates="results/dedup/duplicates.parquet",
        splits=expand("results/splits/{split}.parquet", split=SPLITS),
        split_rejects="results/splits/rejects.parquet",
        lengths=sorted(set(PLAN.variant_lengths.values())),
        models=PLAN.trained_models,
        predictions=PLAN.predictions,
        metrics=PLAN.metrics,
        decision=["results/eval/decision.md"] if PLAN.evaluated else [],
        annotation=list(PLAN.annotation_report_files.values()),
    output:
        reforms=report(
            "results/report/REFORMS.md",
            caption="../report/reforms.rst",
            category="Report",
            subcategory="Checklists and cards",
        ),
        data_card=report(
            "results/report/data_card.md",
            caption="../report/data_card.rst",
            category="Report",
            subcategory="Checklists and cards",
        ),
        environment=report(
            "results/report/environment.json",
            caption="../report/environment.rst",
            category="Report",
            subcategory="Provenance",
        ),
        checksums=report(
            "results/report/checksums.tsv",
            caption="../report/checksums.rst",
            category="Report",
            subcategory="Provenance",
        ),
        config=report(
            "results/report/config.yaml",
            caption="../report/config.rst",
            category="Report",
            subcategory="Provenance",
        ),
        model_cards=PLAN.model_cards,
    log:
        "logs/report/report.log",
    benchmark:
        "benchmarks/report/report.tsv"
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        config=config,
        variants=VARIANTS,
        stages=STAGES,
        trained=list(TRAINED_STAGES),
        lengths=PLAN.variant_lengths,
        annotation=list(PLAN.annotation_report_files),
    script:
        "../scripts/write_report.py"


rule archive:
    input:
        config="results/report/config.yaml",
        checksums="results/report/checksums.tsv",
        environment="results/report/environment.json",
    output:
        "results/archive/locallm-replication.tar.gz",
    log:
        "logs/archive/archive.log",
    benchmark:
        "benchmarks/archive/archive.tsv"
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/archive.py"


# The same archive with the raw input files in it, at their paths relative to the working directory.
use rule archive as archive_with_data with:
    input:
        config="results/report/config.yaml",
        checksums="results/report/checksums.tsv",
        environment="results/report/environment.json",
        data=PLAN.corpus_files,
    output:
        "results/archive/locallm-replication-with-data.tar.gz",
    log:
        "logs/archive/archive_with_data.log",
    benchmark:
        "benchmarks/archive/archive_with_data.tsv"
