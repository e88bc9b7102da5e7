# Input functions, constants and targets of the model-half rules (included by model.smk;
# `snakemake --lint` wants functions and rules in separate files). inference_common.smk uses
# training_settings() and base_input(), so inference loads a stage exactly as training saved it.

import os
import sys
from types import SimpleNamespace

sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
from locallm.builtin_models import BUILTIN_WHEELS, WHEEL_CACHE, builtin_name
from locallm.config import tokenization_id, tokenization_settings, variant_settings
from locallm.gguf_bases import converted_dir, gguf_sources, is_gguf_base
from locallm.models import TINY, resolve_base_path
from locallm.preflight import job_resources

BOOTSTRAPPED_BASE = "results/models/base"
# Files of a trained stage's folder shown by `snakemake --report` (patterns need a wildcard).
STAGE_REPORT_FILES = [
    "{name,loss}.{ext,png}",
    "{name,train_log}.{ext,tsv}",
    "{name,run_info}.{ext,json}",
    "{name,README}.{ext,md}",
]
# {converted folder name: GGUF file} of the variants' GGUF bases (rule convert_gguf).
try:
    GGUF_SOURCES = gguf_sources(
        [variant_settings(config, variant)["base"] for variant in VARIANTS]
    )
except ValueError as error:
    raise WorkflowError(str(error)) from None
# Job sizing keys of `training`: kept out of `params` so that changing them re-runs nothing.
TRAINING_JOB_KEYS = ("threads", "mem_mb", "runtime")
# One tokenize job per distinct tokenization (a digest of its settings), shared by the variants
# that tokenize alike; each maps to the first such variant in the config, whose settings it uses.
TOKENIZATIONS = {}
for _variant in VARIANTS:
    TOKENIZATIONS.setdefault(tokenization_id(config, _variant), _variant)


wildcard_constraints:
    tokenization="|".join(TOKENIZATIONS),


def training_settings(wildcards):
    """The variant's training settings (training defaults + variant overrides), sizing excluded."""
    settings = variant_settings(config, wildcards.variant)
    settings["cache_dir"] = config["model"]["cache_dir"]
    return {k: v for k, v in settings.items() if k not in TRAINING_JOB_KEYS}


def sft_settings(wildcards):
    """The training settings SFT depends on: a change to a DPO key does not re-run SFT."""
    settings = training_settings(wildcards)
    return {k: v for k, v in settings.items() if not k.startswith("dpo_")}


def base_path(wildcards):
    """Where the variant's base is loaded from: the bootstrapped folder, a local folder or a Hub id."""
    return resolve_base_path(training_settings(wildcards), BOOTSTRAPPED_BASE)


def base_input(wildcards):
    """The base the workflow builds, as an input: bootstrapped (builtin:tiny) or converted (GGUF);
    nothing for a local folder or a Hub id."""
    base = training_settings(wildcards)["base"]
    if base == TINY:
        return {"base": BOOTSTRAPPED_BASE}
    if is_gguf_base(base):
        return {"base": converted_dir(base)}
    return {}


def tokenized_dir(variant):
    """The folder of the variant's tokenized data (shared with variants that tokenize alike)."""
    return f"results/tokenized/{tokenization_id(config, variant)}"


def tokenizing_variant(wildcards):
    """The wildcards of the variant whose settings a tokenize job uses."""
    return SimpleNamespace(variant=TOKENIZATIONS[wildcards.tokenization])


def gguf_input(wildcards):
    """The GGUF file convert_gguf converts into results/models/converted/{gguf}."""
    if wildcards.gguf not in GGUF_SOURCES:
        raise WorkflowError(
            f"results/models/converted/{wildcards.gguf}: no variant's base is a GGUF of that "
            f"name (GGUF bases: {', '.join(GGUF_SOURCES) or 'none'})"
        )
    return GGUF_SOURCES[wildcards.gguf]


def builtin_base(wildcards):
    """`builtin:NAME` of the fetch_builtin job for resources/builtin/NAME.gguf."""
    return f"builtin:{wildcards.builtin}"


def tokenize_settings(wildcards):
    """What the tokenized data depends on: tokenizer identity, chat template, length, packing."""
    return tokenization_settings(config, TOKENIZATIONS[wildcards.tokenization])


def tokenize_base_path(wildcards):
    return base_path(tokenizing_variant(wildcards))


def tokenize_input(wildcards):
    return {
        "train": "results/sft_data/train.parquet",
        "validation": "results/sft_data/validation.parquet",
        **base_input(tokenizing_variant(wildcards)),
    }


def sft_input(wildcards):
    return {
        "data": f"{tokenized_dir(wildcards.variant)}/data",
        **base_input(wildcards),
    }


def dpo_input(wildcards):
    return {
        "sft": f"results/models/{wildcards.variant}/sft",
        "preferences": "results/preferences/train.parquet",
        **base_input(wildcards),
    }


def merge_input(wildcards):
    if wildcards.stage == "base":
        raise WorkflowError(
            "merge: the base stage has no adapter; ask for .../sft or .../dpo"
        )
    return {
        "stage": f"results/models/{wildcards.variant}/{wildcards.stage}",
        **base_input(wildcards),
    }


def preference_input(wildcards):
    """The split table, and the user's preference file when task.preferences.source is `file`."""
    inputs = {"split": f"results/splits/{wildcards.split}.parquet"}
    if config["task"]["preferences"]["source"] == "file":
        inputs["file"] = config["task"]["preferences"]["path"]
    return inputs


def checkpoint_dir(stage):
    """Checkpoints of a training stage, outside its declared output so they survive a failed job."""

    def folder(wildcards):
        return f"results/checkpoints/{wildcards.variant}/{stage}"

    return folder


def training_resources(wildcards):
    """Threads and runtime from `training`; GPU count, host and GPU memory (MB) estimated from the
    model's shape, method and sequence length (locallm.estimate, Transformer Math 101).
    """
    settings = variant_settings(config, wildcards.variant)
    return {
        # With threads: auto, every variant's job can run beside the others.
        "threads": job_threads(settings["threads"], len(VARIANTS)),
        "runtime": settings["runtime"],
        **job_resources(config, wildcards.variant),
    }


def training_threads(wildcards):
    return training_resources(wildcards)["threads"]


def training_mem_mb(wildcards):
    return training_resources(wildcards)["mem_mb"]


def training_runtime(wildcards):
    return training_resources(wildcards)["runtime"]


def training_gpus(wildcards):
    return training_resources(wildcards)["gpu"]


def training_gpu_mem_mb(wildcards):
    return training_resources(wildcards).get("gpu_mem_mb", 0)


def model_targets():
    """Every tokenization's length report, and every variant's SFT and DPO stages."""
    return expand(
        "results/tokenized/{tokenization}/lengths.tsv", tokenization=TOKENIZATIONS
    ) + expand(
        ["results/models/{variant}/sft", "results/models/{variant}/dpo"],
        variant=VARIANTS,
    )
