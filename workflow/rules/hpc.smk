# Rules for clusters: fetch each variant's base model on the login node (compute nodes often have
# no internet), and the pre-flight table: size, context, chat template, licence, GPU fit per variant.

import sys

sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
from locallm.fetching import go_offline
from locallm.preflight import format_preflight, preflight_table

# Each variant's tokenize length report: pre-flight shows its longest example once it exists.
PREFLIGHT_LENGTHS = {v: f"{tokenized_dir(v)}/lengths.tsv" for v in VARIANTS}

# Cluster jobs re-read this file in their own Snakemake process (exec mode remote or subprocess),
# which then runs the rule's script: setting the variables here makes every cluster job use the
# local Hugging Face cache only, while fetch_base (a localrule, main process) still downloads.
if not workflow.is_main_process and config["hpc"]["offline"]:
    go_offline()

# Printed by every run and dry-run of the main Snakemake process (not inside cluster jobs), before
# any job is submitted; a model not fetched yet is listed as such.
if workflow.is_main_process:
    print(format_preflight(preflight_table(config, PREFLIGHT_LENGTHS)), file=sys.stderr)


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
        lengths=PREFLIGHT_LENGTHS,
    script:
        "../scripts/preflight.py"
