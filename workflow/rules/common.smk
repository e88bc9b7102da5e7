# Config validation, wildcard constraints and input functions shared by every rule file.

import glob
import hashlib
import os
import sys

from snakemake.utils import validate

# The library decides which files a shard reads; the DAG asks it, so the two always agree.
sys.path.insert(0, os.path.join(workflow.basedir, "workflow", "scripts"))
from locallm.config import canonical
from locallm.corpus import shard_files, shards_by_file

validate(config, "../schemas/config.schema.yaml")
# Sorted keys at every level, so that params (compared by repr) change only when values change.
_sorted_config = canonical(config)
config.clear()
config.update(_sorted_config)


SHARDS = [f"{i:03d}" for i in range(config["corpus"]["shards"])]
SPLITS = ["train", "validation", "test"]
VARIANTS = list(config["variants"])


wildcard_constraints:
    shard=r"\d{3}",
    split="train|validation|test",
    variant="|".join(VARIANTS),


SOTU_JSONL = "resources/sotu/sotu.jsonl"


def corpus_files():
    """The raw files to ingest: the exported demo corpus, or the user's globs (sorted, so stable)."""
    if config["corpus"]["source"] == "sotu":
        return [SOTU_JSONL]
    files = sorted(
        {f for pattern in config["corpus"]["paths"] for f in glob.glob(pattern)}
    )
    if not files:
        raise WorkflowError(
            f"config corpus.paths {config['corpus']['paths']!r} matches no file "
            f"(relative to {os.getcwd()})"
        )
    return files


def files_sharded_whole():
    """True when each ingest shard reads whole files (at least as many files as shards)."""
    return shards_by_file(len(corpus_files()), config["corpus"]["shards"])


def ingest_files(wildcards):
    """The raw files one ingest job reads: its own files, or all of them when records are strided."""
    return shard_files(corpus_files(), int(wildcards.shard), config["corpus"]["shards"])


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
