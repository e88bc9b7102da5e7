"""What annotation covers: the corpus's kept passages (with their split) and the user's own files.

The user's files go through the corpus's readers and record checks (locallm.data.ingest): id and
text columns, encodings, metadata, with a reject and its reason per bad record. The input table,
its rejects and an accounting of every record are written before any model loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from locallm.annotate.checks import CORPUS
from locallm.data.ingest import ingest_records
from locallm.data.sources import REJECT_COLUMNS, corpus_paths
from locallm.logs import get_logger, warn
from locallm.tables import read_table, read_tables, write_table, write_tsv

log = get_logger(__name__)

UNSPLIT = "none"  # split of a passage in no split (its label is missing, or a user file's)


def document_ids(table: pd.DataFrame) -> pd.Series:
    """The document of each passage: its doc_id without the `#<chunk>` suffix chunking adds."""
    suffix = "#" + table["chunk"].astype("int64").astype(str)
    ids = table["doc_id"].astype(str)
    chunked = pd.Series(
        [i.endswith(s) for i, s in zip(ids, suffix, strict=True)], index=table.index, dtype=bool
    )
    return ids.where(~chunked, [i[: -len(s)] for i, s in zip(ids, suffix, strict=True)])


def corpus_passages(filtered: Sequence[str | Path], splits: dict[str, str | Path]) -> pd.DataFrame:
    """Every passage that passed the filters, with the split it is in (`none` if in no split)."""
    table = read_tables(list(filtered))
    split_of = pd.concat(
        [read_table(path, columns=["doc_id"]).assign(split=name) for name, path in splits.items()]
    ).set_index("doc_id")["split"]
    table["split"] = table["doc_id"].map(split_of).fillna(UNSPLIT).astype(str)
    table["origin"] = CORPUS
    return table


def file_passages(
    patterns: Sequence[str], corpus_settings: dict[str, Any], taken: set[str]
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(passages, rejects, raw records) of the user's files, read as the corpus is read.

    A record whose id is already a corpus passage's is rejected as `duplicate_id`.
    """
    files = corpus_paths(list(patterns))
    settings = {**corpus_settings, "paths": list(patterns), "shards": 1}
    kept, rejects, raw = ingest_records(files, 0, settings, whole_files=True)
    clash = document_ids(kept).isin(taken) | kept["doc_id"].isin(taken)
    if clash.any():
        first = kept[clash].drop_duplicates(["source", "source_record"])
        rejects = pd.concat(
            [
                rejects,
                pd.DataFrame(
                    {
                        "source": first["source"],
                        "source_record": first["source_record"],
                        "doc_id": first["doc_id"],
                        "reason": "duplicate_id",
                        "detail": [
                            f"{s} record {r}: id {d!r} is already a corpus passage"
                            for s, r, d in zip(
                                first["source"],
                                first["source_record"],
                                first["doc_id"],
                                strict=True,
                            )
                        ],
                    }
                ),
            ],
            ignore_index=True,
        )[REJECT_COLUMNS]
        kept = kept[~clash]
    kept = kept.assign(split=UNSPLIT, origin="file")
    return kept.reset_index(drop=True), rejects, raw


def sample_groups(table: pd.DataFrame, n_groups: int | None, seed: int) -> pd.Series:
    """True for passages of a seeded random sample of `n_groups` groups (all when None)."""
    if n_groups is None:
        return pd.Series(True, index=table.index)
    groups = np.sort(table["group_id"].astype(str).unique())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(groups, size=min(n_groups, len(groups)), replace=False)
    return table["group_id"].astype(str).isin(set(chosen))


def accounting(
    input_rows: dict[str, int], rejected: dict[str, int], table: pd.DataFrame
) -> pd.DataFrame:
    """Per origin: records read, rejected, passages, passages annotated, passages in the sample."""
    rows = []
    for origin in input_rows:
        mine = table[table["origin"] == origin]
        rows.append(
            {
                "origin": origin,
                "records_read": input_rows[origin],
                "records_rejected": rejected.get(origin, 0),
                "passages": len(mine),
                "passages_annotated": int(mine["annotate"].sum()),
                "passages_in_sample": int(mine["sampled"].sum()),
                "passages_not_annotated": int((~mine["annotate"]).sum()),
            }
        )
    return pd.DataFrame(rows)


def annotation_input(
    *,
    filtered: Sequence[str | Path],
    splits: dict[str, str | Path],
    settings: dict[str, Any],
    corpus_settings: dict[str, Any],
    seed: int,
    output: str | Path,
    rejects: str | Path,
    counts: str | Path,
) -> None:
    """The annotate_input job: the passages to annotate, the rejects of user files, the counts.

    With annotate.sample_groups, only a seeded sample of groups is annotated, and every test-split
    passage besides (the gold sample); `sampled` marks the passages of the random sample, the
    population the estimates describe.
    """
    parts, rejected, read, rejected_counts = [], [], {}, {}
    taken: set[str] = set()
    for entry in settings["input"]:
        if entry == CORPUS:
            corpus = corpus_passages(filtered, splits)
            parts.append(corpus)
            read[CORPUS] = len(corpus)
            taken |= set(corpus["doc_id"].astype(str)) | set(document_ids(corpus))
    files = [entry for entry in settings["input"] if entry != CORPUS]
    if files:
        kept, bad, raw = file_passages(files, corpus_settings, taken)
        parts.append(kept)
        rejected.append(bad)
        read["file"], rejected_counts["file"] = raw, len(bad)
        log.info("user files %s: %d records, %d passages, %d rejected", files, raw, len(kept),
                 len(bad))  # fmt: skip
        if len(bad):
            warn(log, f"{len(bad)} record(s) of the user's files rejected; reasons in {rejects}")
    table = pd.concat(parts, ignore_index=True)
    table.insert(1, "document_id", document_ids(table))
    table["sampled"] = sample_groups(table, settings["sample_groups"], seed).to_numpy()
    table["annotate"] = table["sampled"] | (table["split"] == "test")
    counted = accounting(read, rejected_counts, table)
    log.info("annotation input:\n%s", counted.to_string(index=False))
    write_table(table[table["annotate"]].drop(columns=["annotate"]), output)
    write_table(
        pd.concat(rejected, ignore_index=True)
        if rejected
        else pd.DataFrame(columns=REJECT_COLUMNS),
        rejects,
    )
    write_tsv(counted, counts)
