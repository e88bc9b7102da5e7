"""The memory (mem_mb) each data-half job asks of a scheduler such as SLURM.

A job asks for a fixed part (Python with pandas, pyarrow and scikit-learn, its batches) plus a
multiple of the raw text it holds: one shard, or one dedup bucket's slice of the band keys. So what
a job asks follows the shard size, not the corpus size; only `split` also keeps a few fields per row
of the whole corpus (ids, labels, a text hash). Figures from performance/data_half.py
(docs/performance.md), with headroom.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

# MB a job of each rule needs before its data: the measured peak on a tiny corpus, with headroom.
FIXED_MB = {
    "ingest": 400,
    "ingest_report": 400,
    "minhash": 500,
    "dedup_bucket": 400,
    "dedup": 500,
    "cluster_fit": 600,
    "cluster_assign": 600,
    "cluster_summary": 700,
    "filter": 400,
    "filter_report": 400,
    "split": 700,
}
# MB per MB of raw text in the shard (or bucket slice) the job holds.
PER_HELD_MB = {
    "ingest": 8.0,
    "minhash": 4.0,
    "dedup_bucket": 2.0,
    "dedup": 4.0,
    "cluster_assign": 6.0,
    "filter": 8.0,
    "split": 8.0,
}
# MB per MB of the whole corpus, for the per-row fields `split` keeps of every row.
PER_CORPUS_MB = {"split": 0.5}


def corpus_megabytes(files: Sequence[str | os.PathLike]) -> float:
    """Raw megabytes of the corpus files that exist (a file still to be made counts 0)."""
    return sum(os.path.getsize(path) for path in files if os.path.exists(path)) / 1e6


def data_mem_mb(rule: str, corpus_mb: float, shards: int, buckets: int) -> int:
    """mem_mb of one job of `rule` for a corpus of `corpus_mb` raw MB, rounded up to 100 MB."""
    held = corpus_mb / (buckets if rule == "dedup_bucket" else shards)
    need = (
        FIXED_MB[rule]
        + PER_HELD_MB.get(rule, 0.0) * held
        + PER_CORPUS_MB.get(rule, 0.0) * corpus_mb
    )
    return int(math.ceil(need / 100) * 100)


def data_mem_table(config: dict, files: Sequence[str | os.PathLike]) -> dict[str, int]:
    """mem_mb of every data-half rule for this config and these corpus files."""
    shards = config["corpus"]["shards"]
    buckets = config["dedup"]["buckets"] or shards
    size = corpus_megabytes(files)
    return {rule: data_mem_mb(rule, size, shards, buckets) for rule in FIXED_MB}
