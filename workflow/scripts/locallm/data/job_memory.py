"""The memory (mem_mb) each data-half job asks of a scheduler such as SLURM.

A job asks for a fixed part (Python with pandas, pyarrow and scikit-learn, its batches) plus a
multiple of the raw text it holds: one shard, or one dedup bucket's slice of the band keys. So what
a job asks follows the shard size, not the corpus size; only the reduce jobs `split`,
`ingest_report` and `dedup` also keep a few fields per row of the whole corpus (ids, labels, a text
hash; the signatures of linked rows).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

# Measured peaks (performance/data_half.py, 8 shards, docs/performance.md): at 100 MB and at 1 GB
# of raw text, e.g. ingest 217 and 495 MB, minhash 250 and 525 MB, dedup_bucket 218 and 674 MB,
# cluster_fit 313 and 639 MB, ingest_report 197 and 494 MB. The figures below leave headroom.
# MB a job of each rule needs before its data.
FIXED_MB = {
    "ingest": 300,
    "ingest_report": 400,
    "minhash": 400,
    "dedup_bucket": 400,
    "dedup": 500,
    "cluster_fit": 600,
    "cluster_assign": 600,
    "cluster_summary": 600,
    "filter": 400,
    "filter_report": 400,
    "split": 700,
}
# MB per MB of raw text in the shard (or bucket slice) the job holds at once.
PER_HELD_MB = {
    "ingest": 4.0,
    "minhash": 3.0,
    "dedup_bucket": 4.0,
    # The sample (fit) and the map's sample (summary) are drawn from one shard's text at a time.
    "cluster_fit": 4.0,
    "cluster_assign": 6.0,
    "cluster_summary": 4.0,
    "filter": 8.0,
    "split": 8.0,
}
# MB per MB of the whole corpus, for the per-row fields a reduce job keeps of every row: split
# (ids, labels, a text hash), ingest_report (ids and record keys, to find repeats) and dedup (the
# signatures of the rows in a candidate pair: 1.45 GB at 1 GB of reused political prose, where
# 4 million candidate pairs touched most rows).
PER_CORPUS_MB = {"split": 0.5, "ingest_report": 0.6, "dedup": 1.5}


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
