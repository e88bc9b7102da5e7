# Rules for clusters: fetch each variant's base model on the login node (compute nodes often have
# no internet), and the pre-flight table: size, context, chat template, licence, GPU fit per variant.
# The table is also printed by every run (common.smk).


rule fetch_base:
    output:
        "results/models/fetched/{variant}.json",
    log:
        "logs/fetch_base/{variant}.log",
    benchmark:
        "benchmarks/fetch_base/{variant}.tsv"
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        settings=training_settings,
    script:
        "../scripts/fetch_base.py"


rule preflight:
    input:
        expand("results/models/fetched/{variant}.json", variant=VARIANTS),
    output:
        report(
            "results/preflight.tsv",
            caption="../report/preflight.rst",
            category="Models",
            subcategory="Pre-flight",
        ),
    log:
        "logs/preflight/preflight.log",
    benchmark:
        "benchmarks/preflight/preflight.tsv"
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        # The sections the table reads: model, training, variants, hpc.
        config={k: config[k] for k in ("model", "training", "variants", "hpc")},
    script:
        "../scripts/preflight.py"
