# Input functions, constants and targets of the inference and evaluation rules (included by
# inference.smk; `snakemake --lint` wants functions and rules in separate files).

# Uses training_settings() and base_input() of model_common.smk (the same loading settings as training).

STAGES = config["inference"]["stages"]
# Stages that load a trained adapter; base and fewshot ask the base model itself.
ADAPTER_STAGES = ("sft", "dpo")
INFER_SHARDS = [f"{i:03d}" for i in range(config["inference"]["shards"])]
# Job sizing, kept out of `params` so that changing it does not re-run inference.
JOB_KEYS = ("threads", "mem_mb", "runtime")
# With threads: auto, the infer and perplexity jobs of every variant x stage can run at once.
INFERENCE_THREADS = job_threads(
    config["inference"]["threads"], len(VARIANTS) * len(STAGES)
)


wildcard_constraints:
    stage="base|fewshot|sft|dpo",


def inference_table():
    """The table to run inference on: the test split, or the user's table (inference.input)."""
    if config["inference"]["input"] == "test":
        return "results/splits/test.parquet"
    return config["inference"]["input"]


def stage_model(wildcards):
    """Folders a stage is loaded from: the bootstrapped base (builtin:tiny) and the stage's own."""
    folders = base_input(wildcards)
    if wildcards.stage in ADAPTER_STAGES:
        folders["adapter"] = f"results/models/{wildcards.variant}/{wildcards.stage}"
    return folders


def prediction_metadata():
    """Columns carried into the predictions: the corpus metadata and the derived columns."""
    return config["corpus"]["metadata_columns"] + list(
        config["corpus"]["derived_columns"]
    )


# What load_stage_model reads from a variant's settings. Training hyperparameters are left out: a
# retrained stage reaches inference as a changed input, and the base stage does not depend on them.
LOADING_KEYS = ("base", "revision", "trust_remote_code", "cache_dir", "method")


def loading_settings(wildcards):
    """The settings a stage is loaded with (base, revision, remote code, cache, method)."""
    settings = training_settings(wildcards)
    return {key: settings[key] for key in LOADING_KEYS}


def infer_input(wildcards):
    """The table, the model folders, and for the fewshot stage the train split (its examples)."""
    files = {"table": inference_table(), **stage_model(wildcards)}
    if wildcards.stage == "fewshot":
        files["examples"] = "results/splits/train.parquet"
    return files


def inference_settings():
    return {k: v for k, v in config["inference"].items() if k not in JOB_KEYS}


def perplexity_input(wildcards):
    return {"table": "results/splits/validation.parquet", **stage_model(wildcards)}


def perplexity_settings():
    """The evaluation keys perplexity reads: the decision or bootstrap settings do not re-run it."""
    return {
        k: v for k, v in config["evaluation"].items() if k.startswith("perplexity_")
    }


def perplexity_tables():
    if not config["evaluation"]["perplexity"]:
        return []
    # The fewshot stage's model is the base model: its perplexity is the base stage's.
    return expand(
        "results/eval/perplexity/{variant}/{stage}.parquet",
        variant=VARIANTS,
        stage=[s for s in STAGES if s != "fewshot"],
    )


def evaluated():
    """True when inference runs on the labelled test split of a classification task."""
    return (
        config["inference"]["input"] == "test" and config["task"]["kind"] == "classify"
    )


def evaluation_targets():
    predictions = expand(
        "results/predictions/{variant}/{stage}.parquet", variant=VARIANTS, stage=STAGES
    )
    if not evaluated():
        return predictions
    return predictions + [
        "results/eval/metrics.tsv",
        "results/eval/comparison.png",
        "results/eval/decision.md",
    ]


def inference_gpus(wildcards):
    """GPUs of an inference job of this variant (one; the estimate says if the model fits)."""
    return job_resources(config, wildcards.variant, stage="infer")["gpu"]


def inference_gpu_mem_mb(wildcards):
    """GPU memory (MB) estimated for inference with this variant's model and method."""
    return job_resources(config, wildcards.variant, stage="infer").get("gpu_mem_mb", 0)
