# Config validation, wildcard constraints and input functions shared by the rule files. They are thin
# wrappers over locallm.plan, which works out what the DAG needs once per run (without torch).

import mimetypes
import sys

from snakemake.utils import validate

from locallm.installed import installed_mismatch

# Before anything else: the library the jobs import must be this workflow's.
if problem := installed_mismatch(workflow.basedir):
    raise WorkflowError(problem)

from locallm.model.sources import BUILTIN_WHEELS, WHEEL_CACHE, builtin_name
from locallm.config import canonical
from locallm.config_checks import config_problems
from locallm.plan import BOOTSTRAPPED_BASE, SOTU_JSONL, SPLITS, TRAINED_STAGES, Plan
from locallm.model.fetching import go_offline
from locallm.model.preflight import format_preflight, preflight_table
from locallm.scheduling import training_priority

validate(config, "../schemas/config.schema.yaml")
# Sorted keys at every level, so that params (compared by repr) change only when values change.
_sorted_config = canonical(config)
config.clear()
config.update(_sorted_config)
# Problems that need more than the schema (prompt fields, split fractions, files that match
# nothing, preference settings) stop the run here, before any job starts.
CONFIG_PROBLEMS = config_problems(config)
if CONFIG_PROBLEMS:
    raise WorkflowError("invalid config:\n  " + "\n  ".join(CONFIG_PROBLEMS))

try:
    PLAN = Plan(config, cores=workflow.resource_settings.cores)
except (OSError, ValueError) as error:
    raise WorkflowError(str(error)) from None
# hpc.fit_error: a variant whose training cannot fit the GPUs stops the run here, before any job.
FIT_PROBLEMS = PLAN.fit_problems() if config["hpc"]["fit_error"] else []
if FIT_PROBLEMS:
    raise WorkflowError(
        "pre-flight (hpc.fit_error is on):\n  " + "\n  ".join(FIT_PROBLEMS)
    )

# Cluster jobs re-read this file in their own Snakemake process (exec mode remote or subprocess),
# which then runs the job's script; setting the variables here makes every cluster job use the
# local Hugging Face cache only, while fetch_base (a localrule, main process) still downloads.
if not workflow.is_main_process and config["hpc"]["offline"]:
    go_offline()
# Printed by every run and dry-run of the main Snakemake process (not inside cluster jobs), before
# any job is submitted; a model not fetched yet is listed as such.
if workflow.is_main_process:
    print(
        format_preflight(preflight_table(config, PLAN.variant_lengths)), file=sys.stderr
    )

SHARDS = PLAN.shards
INFER_SHARDS = PLAN.infer_shards
VARIANTS = list(PLAN.variants)
STAGES = PLAN.stages
TOKENIZATIONS = PLAN.tokenizations
BUILTIN_NAMES = [builtin_name(base) for base in BUILTIN_WHEELS]
# `threads: auto`: a job that runs alone (bootstrap_base) gets every core; infer and perplexity jobs
# share them among the variant x stage pairs.
LONE_JOB_THREADS = PLAN.threads(config["training"]["threads"], 1)
INFERENCE_THREADS = PLAN.inference_threads
ANNOTATE_SHARDS = PLAN.annotate_shards
ANNOTATE_THREADS = PLAN.annotate_threads
# Files of a trained stage's folder shown by `snakemake --report` (patterns need a wildcard).
STAGE_REPORT_FILES = [
    "{name,loss}.{ext,png}",
    "{name,train_log}.{ext,tsv}",
    "{name,run_info}.{ext,json}",
    "{name,README}.{ext,md}",
]
# `snakemake --report` embeds each result with its MIME type; Python's table lacks Parquet, which
# would otherwise be shown as text.
mimetypes.add_type("application/vnd.apache.parquet", ".parquet")


wildcard_constraints:
    shard=r"\d{3}",
    split="|".join(SPLITS),
    variant="|".join(VARIANTS),
    tokenization="|".join(TOKENIZATIONS),
    stage="base|fewshot|sft|dpo",


# Corpus and filtering.
def ingest_files(wildcards):
    return PLAN.ingest_files(wildcards.shard)


def job_priority(wildcards):
    """Jobs of the longest variant's training chain start first (locallm.scheduling)."""
    return training_priority(config, dict(wildcards.items()))


# Model half (model.smk).
def variant_plan(wildcards):
    return PLAN.variants[wildcards.variant]


def sft_settings(wildcards):
    return variant_plan(wildcards).sft.params()


def training_settings(wildcards):
    """SFT's settings and the dpo_ keys (rules dpo, merge, fetch_base)."""
    return variant_plan(wildcards).dpo.params()


def base_path(wildcards):
    return variant_plan(wildcards).base_path


def sft_input(wildcards):
    return PLAN.sft_input(wildcards.variant)


def dpo_input(wildcards):
    return PLAN.dpo_input(wildcards.variant)


def merge_input(wildcards):
    return PLAN.merge_input(wildcards.variant, wildcards.stage)


def checkpoint_folder(wildcards, output):
    """Checkpoints of a training stage, outside its output so they survive a failed job."""
    return output[0].replace("results/models/", "results/checkpoints/", 1)


def tokenize_input(wildcards):
    return PLAN.tokenize_input(wildcards.tokenization)


def tokenize_settings(wildcards):
    return PLAN.tokenize_settings(wildcards.tokenization)


def tokenize_base_path(wildcards):
    return PLAN.tokenizing_variant(wildcards.tokenization).base_path


def gguf_input(wildcards):
    return PLAN.gguf_input(wildcards.gguf)


def builtin_base(wildcards):
    """`builtin:NAME` of the fetch_builtin job for resources/builtin/NAME.gguf."""
    return f"builtin:{wildcards.builtin}"


def preference_input(wildcards):
    return PLAN.preference_input(wildcards.split)


def training_threads(wildcards):
    return PLAN.training_resources(wildcards.variant)["threads"]


def training_mem_mb(wildcards):
    return PLAN.training_resources(wildcards.variant)["mem_mb"]


def training_runtime(wildcards):
    return PLAN.training_resources(wildcards.variant)["runtime"]


def training_gpus(wildcards):
    return PLAN.training_resources(wildcards.variant)["gpu"]


def training_gpu_mem_mb(wildcards):
    return PLAN.training_resources(wildcards.variant)["gpu_mem_mb"]


# Inference and evaluation (inference.smk, evaluation.smk).
def loading_settings(wildcards):
    return variant_plan(wildcards).loading.params()


def infer_input(wildcards):
    return PLAN.infer_input(wildcards.variant, wildcards.stage)


def perplexity_input(wildcards):
    return PLAN.perplexity_input(wildcards.variant, wildcards.stage)


def inference_gpus(wildcards):
    return PLAN.gpu_resources(wildcards.variant, "infer")["gpu"]


def inference_gpu_mem_mb(wildcards):
    return PLAN.gpu_resources(wildcards.variant, "infer").get("gpu_mem_mb", 0)


# Annotation (annotate.smk).
def annotate_input_files(wildcards):
    return PLAN.annotate_input_files()


def annotate_shard_input(wildcards):
    return PLAN.annotate_shard_input()


def annotate_partial_folder(wildcards, output):
    """Chunks of an annotate job, outside its output so they survive a killed job."""
    return output[0].replace("results/annotate/shards/", "results/annotate/partial/", 1)
