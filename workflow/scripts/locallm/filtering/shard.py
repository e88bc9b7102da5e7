"""The `filter` job: build the filters the settings ask for and run them on one corpus shard."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from locallm.filtering.caps import ClusterCapFilter, GroupCapFilter, cap_ranks
from locallm.filtering.filters import (
    ClusterExcludeFilter,
    ClusterIncludeFilter,
    DuplicatesFilter,
    Filter,
    LanguageFilter,
    LengthFilter,
    apply_filters,
)
from locallm.filtering.gopher import GopherQualityFilter, GopherRepetitionFilter
from locallm.logs import get_logger
from locallm.tables import read_table, read_tables, write_table

log = get_logger(__name__)


def filters_from(
    settings: Mapping[str, Any],
    duplicates: pd.DataFrame | None = None,
    ranks: pd.Series | None = None,
    group_ranks: pd.Series | None = None,
) -> list[Filter]:
    """The filters `settings` ask for, cheap ones first (the order decides the reason)."""
    filters: list[Filter] = [LengthFilter(settings["min_chars"], settings["max_chars"])]
    if settings["language"]:
        filters.append(LanguageFilter(settings["language"]))
    quality = dict(settings["gopher_quality"])
    if quality.pop("enabled"):
        filters.append(GopherQualityFilter(**quality))
    repetition = dict(settings["gopher_repetition"])
    if repetition.pop("enabled"):
        filters.append(GopherRepetitionFilter(**repetition))
    if settings["drop_duplicates"] and duplicates is not None:
        filters.append(DuplicatesFilter(duplicates))
    if settings["include_clusters"]:
        filters.append(ClusterIncludeFilter(settings["include_clusters"]))
    if settings["exclude_clusters"]:
        filters.append(ClusterExcludeFilter(settings["exclude_clusters"]))
    if settings["cluster_cap"] is not None and ranks is not None:
        filters.append(ClusterCapFilter(settings["cluster_cap"], ranks))
    if settings["group_cap"] is not None and group_ranks is not None:
        filters.append(GroupCapFilter(settings["group_cap"], group_ranks))
    return filters


def with_clusters(docs: pd.DataFrame, assignments: pd.DataFrame, source: str) -> pd.DataFrame:
    """Add the `cluster` column; a document without an assignment is an error naming it."""
    clusters = assignments.set_index("doc_id")["cluster"]
    cluster = docs["doc_id"].map(clusters)
    missing = docs.loc[cluster.isna(), "doc_id"]
    if len(missing):
        raise ValueError(
            f"{len(missing)} documents have no cluster in {source} (first: {missing.iloc[0]!r}); "
            "re-run the cluster rule"
        )
    return docs.assign(cluster=cluster.astype(int).to_numpy())


def filter_shard(
    corpus: str | os.PathLike,
    duplicates: str | os.PathLike,
    clusters: str | os.PathLike,
    all_clusters: Sequence[str],
    settings: Mapping[str, Any],
    seed: int,
    kept: str | os.PathLike,
    rejects: str | os.PathLike,
) -> None:
    """Rule `filter`: apply the filters to one corpus shard, write kept rows and rejects."""
    docs = with_clusters(
        read_table(corpus), read_table(clusters, columns=["doc_id", "cluster"]), str(clusters)
    )
    dups = read_table(duplicates)
    ranks = group_ranks = None
    if settings["cluster_cap"] is not None or settings["group_cap"] is not None:
        assignments = read_tables(list(all_clusters), columns=["doc_id", "group_id", "cluster"])
        ranks = cap_ranks(assignments, dups, settings, seed)
        group_ranks = cap_ranks(assignments, dups, settings, seed, by="group_id")
    kept_docs, rejected = apply_filters(docs, filters_from(settings, dups, ranks, group_ranks))
    counts = rejected["reason"].value_counts().to_dict()
    log.info("%s: %d documents, %d kept, removed %s", corpus, len(docs), len(kept_docs), counts)
    write_table(kept_docs.reset_index(drop=True), kept)
    write_table(rejected, rejects)
