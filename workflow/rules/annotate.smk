# Rules of annotation: the chosen variant x stage labels every passage to annotate (sharded,
# resumable), then the tables, the label-share estimates and the annotation card.


rule choose_stage:
    input:
        metrics=PATHS.metrics,
    output:
        PATHS.annotate_choice,
    log:
        PATHS.log("choose_stage/choose_stage"),
    benchmark:
        PATHS.benchmark("choose_stage/choose_stage")
    conda:
        "../../envs/locallm.yaml"
    params:
        use=config["annotate"]["use"],
        good_enough=config["evaluation"]["good_enough"],
    script:
        "../scripts/choose_stage.py"


rule annotate_input:
    input:
        unpack(PLAN.annotate_input_files),
    output:
        table=PATHS.annotate_input,
        rejects=PATHS.annotate_rejects,
        counts=PATHS.annotate_counts,
    log:
        PATHS.log("annotate_input/annotate_input"),
    benchmark:
        PATHS.benchmark("annotate_input/annotate_input")
    conda:
        "../../envs/locallm.yaml"
    params:
        settings=config["annotate"],
        corpus=config["corpus"],
        seed=config["seed"],
    script:
        "../scripts/annotate_input.py"


rule annotate_shard:
    input:
        unpack(PLAN.annotate_shard_input),
    output:
        PATHS.annotate_shard,
    log:
        PATHS.log("annotate_shard/{shard}"),
    benchmark:
        PATHS.benchmark("annotate_shard/{shard}")
    conda:
        "../../envs/locallm.yaml"
    threads: PLAN.threads("annotate_shard")
    resources:
        **PLAN.resources("annotate_shard"),
    params:
        partial=PLAN.annotate_partial,
        shards=config["annotate"]["shards"],
        chunk_rows=config["annotate"]["chunk_rows"],
        settings=PLAN.inference_settings.params(),
        task=config["task"],
        models=PLAN.annotation_models,
        seed=config["seed"],
    script:
        "../scripts/annotate_shard.py"


rule gather_annotations:
    input:
        shards=expand(PATHS.annotate_shard, shard=PLAN.annotate_shards),
        table=PATHS.annotate_input,
        counts=PATHS.annotate_counts,
        choice=PATHS.annotate_choice,
    output:
        passages=report(
            PATHS.annotated_passages,
            caption="../report/annotate_passages.rst",
            category="Annotation",
        ),
        documents=PATHS.annotated_documents,
        accounting=PATHS.annotate_accounting,
    log:
        PATHS.log("gather_annotations/gather_annotations"),
    benchmark:
        PATHS.benchmark("gather_annotations/gather_annotations")
    conda:
        "../../envs/locallm.yaml"
    params:
        labels=config["task"]["labels"],
    script:
        "../scripts/gather_annotations.py"


rule estimate_shares:
    input:
        PATHS.annotated_passages,
    output:
        tsv=report(
            PATHS.estimates,
            caption="../report/annotate_estimates.rst",
            category="Annotation",
        ),
        png=report(
            PATHS.estimates_png,
            caption="../report/annotate_estimates.rst",
            category="Annotation",
        ),
    log:
        PATHS.log("estimate_shares/estimate_shares"),
    benchmark:
        PATHS.benchmark("estimate_shares/estimate_shares")
    conda:
        "../../envs/locallm.yaml"
    params:
        task=config["task"],
        settings=config["annotate"],
        bootstrap=config["evaluation"]["bootstrap"],
        seed=config["seed"],
    script:
        "../scripts/estimate_shares.py"


rule annotation_card:
    input:
        choice=PATHS.annotate_choice,
        metrics=PATHS.metrics,
        estimates=PATHS.estimates,
        accounting=PATHS.annotate_accounting,
    output:
        report(
            PATHS.annotation_card,
            caption="../report/annotate_card.rst",
            category="Annotation",
        ),
    log:
        PATHS.log("annotation_card/annotation_card"),
    benchmark:
        PATHS.benchmark("annotation_card/annotation_card")
    conda:
        "../../envs/locallm.yaml"
    params:
        labels=config["task"]["labels"],
    script:
        "../scripts/annotation_card.py"


rule annotate_csv:
    input:
        passages=PATHS.annotated_passages,
        documents=PATHS.annotated_documents,
    output:
        passages=PATHS.annotated_passages_csv,
        documents=PATHS.annotated_documents_csv,
    log:
        PATHS.log("annotate_csv/annotate_csv"),
    benchmark:
        PATHS.benchmark("annotate_csv/annotate_csv")
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/annotate_csv.py"


rule annotate:
    input:
        PLAN.annotation_targets,
