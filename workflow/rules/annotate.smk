# Rules of annotation: the chosen variant x stage labels every passage to annotate (sharded,
# resumable), then the tables, the label-share estimates and the annotation card.
# Input functions: common.smk.


rule choose_stage:
    input:
        metrics="results/eval/metrics.tsv",
    output:
        "results/annotate/choice.json",
    log:
        "logs/choose_stage/choose_stage.log",
    benchmark:
        "benchmarks/choose_stage/choose_stage.tsv"
    conda:
        "../../envs/locallm.yaml"
    params:
        use=config["annotate"]["use"],
        good_enough=config["evaluation"]["good_enough"],
    script:
        "../scripts/choose_stage.py"


rule annotate_input:
    input:
        unpack(annotate_input_files),
    output:
        table="results/annotate/input.parquet",
        rejects="results/annotate/rejects.parquet",
        counts="results/annotate/input_counts.tsv",
    log:
        "logs/annotate_input/annotate_input.log",
    benchmark:
        "benchmarks/annotate_input/annotate_input.tsv"
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
        unpack(annotate_shard_input),
    output:
        "results/annotate/shards/{shard}.parquet",
    log:
        "logs/annotate_shard/{shard}.log",
    benchmark:
        "benchmarks/annotate_shard/{shard}.tsv"
    conda:
        "../../envs/locallm.yaml"
    threads: ANNOTATE_THREADS
    resources:
        mem_mb=config["inference"]["mem_mb"],
        runtime=config["inference"]["runtime"],
    params:
        partial=annotate_partial_folder,
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
        shards=expand("results/annotate/shards/{shard}.parquet", shard=ANNOTATE_SHARDS),
        table="results/annotate/input.parquet",
        counts="results/annotate/input_counts.tsv",
        choice="results/annotate/choice.json",
    output:
        passages=report(
            "results/annotate/passages.parquet",
            caption="../report/annotate_passages.rst",
            category="Annotation",
        ),
        documents="results/annotate/documents.parquet",
        accounting="results/annotate/accounting.tsv",
    log:
        "logs/gather_annotations/gather_annotations.log",
    benchmark:
        "benchmarks/gather_annotations/gather_annotations.tsv"
    conda:
        "../../envs/locallm.yaml"
    params:
        labels=config["task"]["labels"],
    script:
        "../scripts/gather_annotations.py"


rule estimate_shares:
    input:
        "results/annotate/passages.parquet",
    output:
        tsv=report(
            "results/annotate/estimates.tsv",
            caption="../report/annotate_estimates.rst",
            category="Annotation",
        ),
        png=report(
            "results/annotate/estimates.png",
            caption="../report/annotate_estimates.rst",
            category="Annotation",
        ),
    log:
        "logs/estimate_shares/estimate_shares.log",
    benchmark:
        "benchmarks/estimate_shares/estimate_shares.tsv"
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
        choice="results/annotate/choice.json",
        metrics="results/eval/metrics.tsv",
        estimates="results/annotate/estimates.tsv",
        accounting="results/annotate/accounting.tsv",
    output:
        report(
            "results/annotate/card.md",
            caption="../report/annotate_card.rst",
            category="Annotation",
        ),
    log:
        "logs/annotation_card/annotation_card.log",
    benchmark:
        "benchmarks/annotation_card/annotation_card.tsv"
    conda:
        "../../envs/locallm.yaml"
    params:
        labels=config["task"]["labels"],
    script:
        "../scripts/annotation_card.py"


rule annotate_csv:
    input:
        passages="results/annotate/passages.parquet",
        documents="results/annotate/documents.parquet",
    output:
        passages="results/annotate/passages.csv",
        documents="results/annotate/documents.csv",
    log:
        "logs/annotate_csv/annotate_csv.log",
    benchmark:
        "benchmarks/annotate_csv/annotate_csv.tsv"
    conda:
        "../../envs/locallm.yaml"
    script:
        "../scripts/annotate_csv.py"


rule annotate:
    input:
        PLAN.annotation_targets,
