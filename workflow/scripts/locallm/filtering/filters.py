"""Filters (datatrove-like): one small class per filter; each marks the rows it removes, with its
name and check as the reason. `apply_filters` runs them in order, first removal wins.

The Gopher filters are in `locallm.filtering.gopher`, the seeded caps in `locallm.filtering.caps`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

REJECT_COLUMNS = ["doc_id", "group_id", "reason", "detail"]

# A check of one text returns None (passes) or (check name, human detail).
Failure = tuple[str, str] | None


class Filter:
    """One filter: `name` prefixes the reasons of the rows it removes."""

    name: str = "filter"

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        """reason and detail for the rows of `docs` this filter removes (a subset of docs.index)."""
        raise NotImplementedError


class TextFilter(Filter):
    """A filter that looks at one text at a time through `check`."""

    def check(self, text: str) -> Failure:
        raise NotImplementedError

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        checked = zip(docs.index, map(self.check, docs["text"]), strict=True)
        failures = {i: failure for i, failure in checked if failure}
        return rejections(self.name, failures)


def rejections(name: str, failures: Mapping[Any, tuple[str, str]]) -> pd.DataFrame:
    """A reason/detail frame indexed like the docs, reasons prefixed with the filter's name."""
    return pd.DataFrame(
        {
            "reason": [f"{name}.{check}" for check, _ in failures.values()],
            "detail": [detail for _, detail in failures.values()],
        },
        index=pd.Index(list(failures), dtype=object),
    )


class LengthFilter(Filter):
    """Bounds on the number of characters."""

    name = "length"

    def __init__(self, min_chars: int = 0, max_chars: int | None = None):
        self.min_chars, self.max_chars = min_chars, max_chars

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        chars = docs["text"].str.len()
        failures = {}
        for i, n in chars[chars < self.min_chars].items():
            failures[i] = ("min_chars", f"chars={n} < {self.min_chars}")
        if self.max_chars is not None:
            for i, n in chars[chars > self.max_chars].items():
                failures[i] = ("max_chars", f"chars={n} > {self.max_chars}")
        return rejections(self.name, failures)


class LanguageFilter(TextFilter):
    """Keep texts whose language (langid.py, offline) is the configured ISO 639-1 code."""

    name = "language"

    def __init__(self, language: str):
        try:
            import langid
        except ImportError as error:
            raise ImportError(
                f"config filter.language is {language!r}, and the language filter needs langid: "
                "pip install langid==1.1.6 (or set filter.language: null)"
            ) from error
        self.language = language
        self.classify = langid.classify

    def check(self, text: str) -> Failure:
        detected, _ = self.classify(text)
        if detected != self.language:
            return "mismatch", f"detected {detected}, want {self.language}"
        return None


class DuplicatesFilter(Filter):
    """Remove copies that `dedup` marked (the kept copy of each cluster of duplicates stays)."""

    name = "dedup"

    def __init__(self, duplicates: pd.DataFrame):
        self.duplicates = duplicates.set_index("doc_id")

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        hits = docs[["doc_id"]].join(self.duplicates, on="doc_id", how="inner")
        failures = {
            i: (kind, f"duplicate_of={of} (estimated Jaccard {j:.2f})")
            for i, kind, of, j in zip(
                hits.index,
                hits["kind"],
                hits["duplicate_of"],
                hits["estimated_jaccard"],
                strict=True,
            )
        }
        return rejections(self.name, failures)


class ClusterIncludeFilter(Filter):
    """Keep only documents of the listed clusters."""

    name = "cluster"

    def __init__(self, clusters: Sequence[int]):
        self.clusters = sorted(set(clusters))

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        out = docs[~docs["cluster"].isin(self.clusters)]
        detail = f"not in include_clusters {self.clusters}"
        return rejections(
            self.name, {i: ("include", f"cluster {c} {detail}") for i, c in out["cluster"].items()}
        )


class ClusterExcludeFilter(Filter):
    """Remove documents of the listed clusters."""

    name = "cluster"

    def __init__(self, clusters: Sequence[int]):
        self.clusters = sorted(set(clusters))

    def __call__(self, docs: pd.DataFrame) -> pd.DataFrame:
        out = docs[docs["cluster"].isin(self.clusters)]
        return rejections(
            self.name,
            {i: ("exclude", f"cluster {c} in exclude_clusters") for i, c in out["cluster"].items()},
        )


def apply_filters(
    docs: pd.DataFrame, filters: Sequence[Filter | Callable]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split docs into (kept, rejected); a rejected row carries the first filter that removed it.

    Filters run in order, each on the rows still kept, so later (costlier) ones see fewer rows.
    """
    remaining = docs
    removed = []
    for step in filters:
        if remaining.empty:
            break
        hits = step(remaining)
        if len(hits):
            rejected = remaining.loc[hits.index, ["doc_id", "group_id"]].assign(
                reason=hits["reason"].to_numpy(), detail=hits["detail"].to_numpy()
            )
            removed.append(rejected)
            remaining = remaining.drop(index=hits.index)
    rejected = pd.concat(removed) if removed else pd.DataFrame(columns=REJECT_COLUMNS)
    return remaining, rejected[REJECT_COLUMNS].reset_index(drop=True)
