# Input functions and targets of the report rule (included by report.smk; `snakemake --lint`
# wants functions and rules in separate files).

import mimetypes

# `snakemake --report` embeds each result with its MIME type; Python's table lacks Parquet, which
# would otherwise be shown as text.
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")

# Stages that training writes (the base stage is the untouched base model).
TRAINED_STAGES = ["sft", "dpo"]


def variant_lengths():
    """Each variant's tokenized-length report (variants that tokenize alike share one)."""
    return {variant: f"{tokenized_dir(variant)}/lengths.tsv" for variant in VARIANTS}


def metrics_input():
    """metrics.tsv when the run evaluates on a labelled test split, else nothing."""
    return ["results/eval/metrics.tsv"] if evaluated() else []


def model_card_paths():
    return expand(
        "results/report/model_cards/{variant}/{stage}.md",
        variant=VARIANTS,
        stage=TRAINED_STAGES,
    )


def report_targets():
    return ["results/report/REFORMS.md"]
