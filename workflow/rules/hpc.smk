# Rules for clusters: fetch each variant's base model on the login node (compute nodes often have
# no internet), and the pre-flight table: size, context, chat template, licence, GPU fit per variant.
# The table is also printed by every run (common.smk).


rule fetch_base:
    output:
        PATHS.fetched,
    log:
        PATHS.log("fetch_base/{variant}"),
    benchmark:
        PATHS.benchmark("fetch_base/{variant}")
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        settings=PLAN.training_params,
    script:
        "../scripts/fetch_base.py"


rule preflight:
    input:
        expand(PATHS.fetched, variant=VARIANTS),
    output:
        report(
            PATHS.preflight,
            caption="../report/preflight.rst",
            category="Models",
            subcategory="Pre-flight",
        ),
    log:
        PATHS.log("preflight/preflight"),
    benchmark:
        PATHS.benchmark("preflight/preflight")
    localrule: True
    conda:
        "../../envs/locallm.yaml"
    params:
        # The sections the table reads: model, training, variants, hpc.
        config={k: config[k] for k in ("model", "training", "variants", "hpc")},
    script:
        "../scripts/preflight.py"
