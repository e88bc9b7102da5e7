# The citable report of a finished run: REFORMS checklist, data card, model cards, environment and
# checksums (docs/reproduce.md), and the replication archive (asked for by name).


rule report:
    input:
        raw=PLAN.corpus_files,
        ingest_report=PATHS.ingest_report,
        filter_report=PATHS.filter_report,
        split_report=PATHS.split_report,
        cluster_summary=PATHS.cluster_summary,
        duplicates=PATHS.duplicates,
        splits=expand(PATHS.split, split=SPLITS),
        split_rejects=PATHS.split_rejects,
        lengths=sorted(set(PLAN.variant_lengths.values())),
        models=PLAN.trained_models,
        predictions=PLAN.predictions,
        metrics=PLAN.metrics,
        decision=[PATHS.decision] if PLAN.evaluated else [],
        annotation=list(PLAN.annotation_report_files.values()),
    output:
        reforms=report(
            PATHS.reforms,
            caption="../report/reforms.rst",
            category="Report",
            subcategory="Checklists and cards",
        ),
        data_card=report(
            PATHS.data_card,
            caption="../report/data_card.rst",
            category="Report",
            subcategory="Checklists and cards",
        ),
        environment=report(
            PATHS.environment,
            caption="../report/environment.rst",
            category="Report",
            subcategory="Provenance",
        ),
        checksums=report(
            PATHS.checksums,
            caption="../report/checksums.rst",
            category="Report",
            subcategory="Provenance",
        ),
        config=report(
            PATHS.config,
            caption="../report/config.rst",
            category="Report",
            subcategory="Provenance",
        ),
        model_cards=PLAN.model_cards,
    log:
        PATHS.log("report/report"),
    benchmark:
        PATHS.benchmark("report/report")
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        config=config,
        variants=VARIANTS,
        stages=STAGES,
        trained=list(TRAINED_STAGES),
        lengths=PLAN.variant_lengths,
        benchmarks=PATHS.benchmarks,
        annotation=list(PLAN.annotation_report_files),
    script:
        "../scripts/write_report.py"


rule archive:
    input:
        config=PATHS.config,
        checksums=PATHS.checksums,
        environment=PATHS.environment,
    output:
        PATHS.archive,
    log:
        PATHS.log("archive/archive"),
    benchmark:
        PATHS.benchmark("archive/archive")
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/archive.py"


# The same archive with the raw input files in it, at their paths relative to the working directory.
use rule archive as archive_with_data with:
    input:
        config=PATHS.config,
        checksums=PATHS.checksums,
        environment=PATHS.environment,
        data=PLAN.corpus_files,
    output:
        PATHS.archive_with_data,
    log:
        PATHS.log("archive/archive_with_data"),
    benchmark:
        PATHS.benchmark("archive/archive_with_data")
