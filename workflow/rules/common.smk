# Config validation, wildcard constraints and input functions shared by every rule file.

import functools
import hashlib
import os
import sys

from snakemake.utils import validate

# The library decides which files a shard reads; the DAG asks it, so the two always agree.
sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
from locallm.config import canonical
from locallm.config_checks import config_problems
from locallm.corpus import corpus_paths, files_by_shard, shards_by_file
from locallm.scheduling import training_priority
from locallm.scheduling import job_threads as scheduled_threads

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


SHARDS = [f"{i:03d}" for i in range(config["corpus"]["shards"])]
SPLITS = ["train", "validation", "test"]
VARIANTS = list(config["variants"])


wildcard_constraints:
    shard=r"\d{3}",
    split="train|validation|test",
    variant="|".join(VARIANTS),


SOTU_JSONL = "resources/sotu/sotu.jsonl"


# Cached: every ingest job's input function asks, and globbing once per job made planning quadratic.
@functools.cache
def corpus_files():
    """The raw files to ingest: the exported demo corpus, or the user's globs (sorted, so stable)."""
    if config["corpus"]["source"] == "sotu":
        return [SOTU_JSONL]
    return list(checked_files(tuple(config["corpus"]["paths"])))


@functools.cache
def checked_files(patterns):
    """The files the globs match, each checked readable once per DAG build (not once per job)."""
    try:
        return tuple(corpus_paths(list(patterns)))
    except (OSError, ValueError) as error:
        raise WorkflowError(str(error)) from None


def files_sharded_whole():
    """True when each ingest shard reads whole files (at least as many files as shards)."""
    return shards_by_file(len(corpus_files()), config["corpus"]["shards"])


@functools.cache
def files_of_shards():
    """Every shard's raw files, hashed once per Snakemake run."""
    return files_by_shard(corpus_files(), config["corpus"]["shards"])


def ingest_files(wildcards):
    """The raw files one ingest job reads: its own files, or all of them when records are strided."""
    return list(files_of_shards()[int(wildcards.shard)])


def job_threads(setting, jobs_at_once):
    """Threads of a job: `auto` shares --cores among `jobs_at_once` jobs (locallm.scheduling)."""
    return scheduled_threads(setting, workflow.resource_settings.cores, jobs_at_once)


def job_priority(wildcards):
    """Jobs of the longest variant's training chain start first (locallm.scheduling)."""
    return training_priority(config, dict(wildcards.items()))


def settings_digest(*settings):
    """A short hash of settings, for params whose change must re-run a rule."""
    return hashlib.sha256(repr(settings).encode()).hexdigest()[:16]


def data_targets():
    return [
        "results/corpus/ingest_report.tsv",
        "results/dedup/duplicates.parquet",
        "results/clusters/summary.tsv",
        "results/clusters/map.png",
        "results/filtered/filter_report.tsv",
        expand("results/splits/{split}.parquet", split=SPLITS),
        "results/splits/split_report.tsv",
    ]


def all_targets():
    # model_targets(), evaluation_targets() and report_targets() are defined in model_common.smk,
    # inference_common.smk and report_common.smk.
    return data_targets() + model_targets() + evaluation_targets() + report_targets()
