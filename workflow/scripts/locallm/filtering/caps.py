"""Seeded caps: at most N documents per cluster or group, the same draw whatever the sharding."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import pandas as pd

from locallm.filtering.filters import Filter, rejections


def seeded_rank(doc_ids: pd.Series, clusters: pd.Series, seed: int) -> pd.Series:
    """Rank of each document inside its cluster (or group) by a seeded hash of its doc_id
    (0 = first drawn).

    The rank depends only on (seed, doc_id) and the cluster's members, never on shards or row order.
    """
    keys = [
        hashlib.blake2b(f"{seed}:{d}".encode(), digest_size=8).hexdigest()
        for d in doc_ids.astype(str)
    ]
    frame = pd.DataFrame(
        {"cluster": clusters.to_numpy(), "key": keys, "doc_id": doc_ids.astype(str).to_numpy()}
    )
    order = frame.sort_values(["cluster", "key", "doc_id"])
    ranks = order.groupby("cluster").cumcount()
    return pd.Series(ranks.reindex(frame.index).to_numpy(), index=doc_ids.index)


class SeededCapFilter(Filter):
    """At most `cap` documents per value of `column`: those with the lowest seeded rank."""

    name = ""
    column = ""

    def __init__(self, cap: int, ranks: pd.Series):
        # ranks: doc_id -> rank inside its cluster or group over the whole corpus (see cap_ranks).
        self.cap, self.ranks = cap, ranks

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        rank = docs["doc_id"].map(self.ranks)
        out = docs[rank.isna() | (rank >= self.cap)]
        failures = {
            i: (
                "cap",
                f"{self.name} {v}: seeded rank {int(r) if r == r else 'none'} >= cap {self.cap}",
            )
            for i, v, r in zip(out.index, out[self.column], rank[out.index], strict=True)
        }
        return rejections(self.name, failures)


class ClusterCapFilter(SeededCapFilter):
    """At most `cap` documents per topic cluster, among the eligible."""

    name = "cluster"
    column = "cluster"


class GroupCapFilter(SeededCapFilter):
    """At most `cap` documents per group (e.g. passages per speech), drawn with the seed: a sample
    in which long documents do not outweigh short ones."""

    name = "group"
    column = "group_id"


def eligible_for_cap(
    assignments: pd.DataFrame, duplicates: pd.DataFrame, settings: Mapping[str, Any]
) -> pd.DataFrame:
    """Assignments of documents that the corpus-wide filters (dedup, include/exclude) keep."""
    keep = pd.Series(True, index=assignments.index)
    if settings["drop_duplicates"]:
        keep &= ~assignments["doc_id"].isin(duplicates["doc_id"])
    if settings["include_clusters"]:
        keep &= assignments["cluster"].isin(settings["include_clusters"])
    keep &= ~assignments["cluster"].isin(settings["exclude_clusters"])
    return assignments[keep]


def cap_ranks(
    assignments: pd.DataFrame,
    duplicates: pd.DataFrame,
    settings: Mapping[str, Any],
    seed: int,
    by: str = "cluster",
) -> pd.Series:
    """doc_id -> seeded rank in its cluster (or `by` column: group_id), over all shards, among
    documents eligible for the cap.

    Quality filters are per shard, so the cap is drawn before them: a cluster ends with at most
    `cluster_cap` documents, fewer where quality filters removed some of the drawn ones.
    """
    eligible = eligible_for_cap(assignments, duplicates, settings)
    ranks = seeded_rank(eligible["doc_id"], eligible[by], seed)
    return pd.Series(ranks.to_numpy(), index=eligible["doc_id"].astype(str).to_numpy())
