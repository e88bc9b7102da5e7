"""Leak-free train/validation/test splits: whole groups by a seeded hash, checked for leakage.

Memory follows the shard, not the corpus: a first pass reads ids, labels and metadata and reduces
each text to a hash and its length; splits, leaks and the report come from those alone. A second
pass writes each split shard by shard, in row groups (locallm.tables.parquet_appender).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from locallm.data.records import is_blank
from locallm.data.sources import RESERVED
from locallm.logs import get_logger, warn
from locallm.settings import SPLITS, split_fractions
from locallm.tables import parquet_appender, read_table, write_table, write_tsv
from locallm.task.prompts import normalise_label

log = get_logger(__name__)

MISSING_LABEL = "(missing)"


def unit_hash(seed: int, key: str) -> float:
    """A number in [0, 1) that depends only on the seed and the key (SHA-256, stable everywhere)."""
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(u: float, fractions: dict[str, float]) -> str:
    """The split whose interval of the cumulative fractions holds `u`."""
    cumulative = 0.0
    for name, fraction in fractions.items():
        cumulative += fraction
        if u < cumulative:
            return name
    # u sits above a cumulative sum that rounding left just under 1: the last non-empty split.
    return [name for name, fraction in fractions.items() if fraction > 0][-1]


def assign_groups(groups: list[str], fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Each group's split, from the hash of (seed, group) against the cumulative fractions."""
    return {group: split_of(unit_hash(seed, group), fractions) for group in groups}


def assign_stratified(strata: pd.Series, fractions: dict[str, float], seed: int) -> dict[str, str]:
    """Each group's split, cutting every stratum's hash-ordered groups by the fractions.

    `strata` maps group_id to its stratum. Within a stratum the i-th of n groups (ordered by hash)
    goes to the split holding (i + 0.5) / n, so each split gets its share of every stratum.
    """
    assigned = {}
    for _, members in strata.groupby(strata, sort=True):
        ordered = sorted(members.index, key=lambda group: (unit_hash(seed, group), group))
        n = len(ordered)
        for i, group in enumerate(ordered):
            assigned[group] = split_of((i + 0.5) / n, fractions)
    return assigned


def group_majority_labels(docs: pd.DataFrame, column: str) -> pd.Series:
    """Each group's most frequent value of `column` (ties: the smallest), indexed by group_id."""
    labels = docs[column].astype("string").fillna(MISSING_LABEL)
    counts = (
        pd.DataFrame({"group_id": docs["group_id"], "label": labels})
        .value_counts()
        .rename("n")
        .reset_index()
        .sort_values(["group_id", "n", "label"], ascending=[True, False, True])
    )
    return counts.drop_duplicates("group_id").set_index("group_id")["label"]


def group_splits(docs: pd.DataFrame, settings: dict, seed: int) -> dict[str, str]:
    """Each group's split: whole groups, stratified by split.stratify_by when set."""
    fractions = split_fractions(settings)
    column = settings["stratify_by"]
    if column is None:
        return assign_groups(sorted(docs["group_id"].unique()), fractions, seed)
    require_column(docs.columns, column, "split.stratify_by")
    return assign_stratified(group_majority_labels(docs, column), fractions, seed)


def assign_splits(docs: pd.DataFrame, settings: dict, seed: int) -> pd.Series:
    """The split of every row, from its group's split."""
    return docs["group_id"].map(group_splits(docs, settings, seed)).rename("split")


def require_column(columns: Sequence[str], column: str, key: str) -> None:
    """Fail with the config key and the available columns when `column` is missing."""
    if column not in columns:
        raise KeyError(
            f"config {key} is {column!r}, not a column of the filtered corpus "
            f"(columns: {', '.join(map(str, columns))})"
        )


def filter_task_labels(docs: pd.DataFrame, task: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split rows into (kept, rejected) by task.labels; rejected rows name their label.

    With task.label_normalize, labels match after strip + casefold and take the spelling of
    task.labels. The log lists the most frequent rejected values beside the allowed ones.
    """
    if not task["labels"]:
        return docs, rejects_frame(docs.iloc[:0], "", [])
    column = task["label_column"]
    if column is None:
        raise ValueError("config task.labels is set but task.label_column is null; name the column")
    require_column(docs.columns, column, "task.label_column")
    docs = normalise_labels(docs, task)
    values = docs[column].astype("string")
    keep = values.isin(task["labels"]).fillna(False).to_numpy(bool)
    rejected = docs[~keep]
    details = [MISSING_LABEL if pd.isna(value) else str(value) for value in rejected[column]]
    if details:
        top = pd.Series(details).value_counts().head(10)
        listed = ", ".join(f"{value!r} ({n})" for value, n in top.items())
        hint = "" if task["label_normalize"] else "; task.label_normalize ignores case and spaces"
        warn(
            log,
            f"{len(details)} row(s) rejected: their {column} is not one of task.labels "
            f"{task['labels']}; most frequent rejected values: {listed}{hint}",
        )
    return docs[keep], rejects_frame(rejected, "label.not_in_task_labels", details)


def normalise_labels(docs: pd.DataFrame, task: dict) -> pd.DataFrame:
    """With task.label_normalize, labels that match after strip + casefold take the configured
    spelling (the same in the pass that splits and in the pass that writes)."""
    column = task["label_column"]
    if not (task["labels"] and task["label_normalize"]):
        return docs
    values = docs[column].astype("string")
    canonical = {normalise_label(label): label for label in task["labels"]}
    values = values.map(lambda v: canonical.get(normalise_label(v), v), na_action="ignore")
    return docs.assign(**{column: values.astype(object).where(values.notna(), None)})


def rejects_frame(docs: pd.DataFrame, reason: str, details: list[str]) -> pd.DataFrame:
    """Rows of the rejects table for `docs`: doc_id, group_id, reason, detail."""
    return pd.DataFrame(
        {
            "doc_id": docs["doc_id"].astype(str).to_numpy(),
            "group_id": docs["group_id"].astype(str).to_numpy(),
            "reason": [reason] * len(docs),
            "detail": list(details),
        },
        dtype="string",
    )


def normalised_text_hash(text: str) -> str:
    """A hash of lowercased, whitespace-collapsed text: equal for copies differing in layout."""
    return hashlib.sha1(re.sub(r"\s+", " ", text).strip().lower().encode()).hexdigest()


def duplicate_components(docs: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """A component id per row of `docs`, linking dedup pairs (transitively) and exact text copies.

    `docs` holds text_key (text_facts), not the text.
    Pairs through documents that filter removed still link their neighbours: copies of one text
    are copies of each other. Exact copies are found here too, whatever dedup was set to do.
    """
    text_key = docs["text_key"]
    first_of_text = docs["doc_id"].groupby(text_key.to_numpy()).transform("first")
    edges = pd.concat(
        [
            pairs[["doc_id", "duplicate_of"]].astype(str),
            pd.DataFrame({"doc_id": docs["doc_id"], "duplicate_of": first_of_text}),
        ],
        ignore_index=True,
    )
    ids = pd.Index(pd.unique(pd.concat([docs["doc_id"], edges.doc_id, edges.duplicate_of])))
    a, b = ids.get_indexer(edges.doc_id), ids.get_indexer(edges.duplicate_of)
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    return pd.Series(component[ids.get_indexer(docs["doc_id"])], index=docs.index)


def find_leaks(docs: pd.DataFrame, pairs: pd.DataFrame, held_out: str) -> pd.DataFrame:
    """Rows of split `held_out` with a near or exact duplicate in train, and one such train copy."""
    component = duplicate_components(docs, pairs)
    train = docs["split"] == "train"
    train_copy = docs["doc_id"][train].groupby(component[train]).min()
    held = docs[docs["split"] == held_out]
    copy = component[held.index].map(train_copy)
    leaked = copy.notna()
    return pd.DataFrame(
        {"doc_id": held["doc_id"][leaked], "train_copy": copy[leaked]}, index=held.index[leaked]
    )


def straddling_pairs(docs: pd.DataFrame, pairs: pd.DataFrame, a: str, b: str) -> int:
    """Pairs of the dedup table whose two members landed in splits `a` and `b`."""
    split = docs.set_index("doc_id")["split"]
    left = pairs["doc_id"].astype(str).map(split)
    right = pairs["duplicate_of"].astype(str).map(split)
    return int((((left == a) & (right == b)) | ((left == b) & (right == a))).sum())


def groups_straddling(docs: pd.DataFrame) -> int:
    """Groups whose rows sit in more than one split (must be 0)."""
    return int((docs.groupby("group_id")["split"].nunique() > 1).sum())


def size_warnings(
    docs: pd.DataFrame, settings: dict, label_column: str | None, labels: list[str]
) -> list[tuple[str, str, str]]:
    """(split, key, message) for training text under split.min_train_mb and rare labels."""
    found = []
    train_mb = docs.loc[docs["split"] == "train", "n_bytes"].sum() / 1e6
    if train_mb < settings["min_train_mb"]:
        found.append(
            (
                "train",
                "min_train_mb",
                f"the training split holds {train_mb:.2f} MB of text, under split.min_train_mb "
                f"{settings['min_train_mb']:g} MB (a common rule of thumb is at least 100 MB of "
                "high-quality text for fine-tuning)",
            )
        )
    if label_column is None:
        return found
    values = docs[label_column].astype("string").fillna(MISSING_LABEL)
    for split in SPLITS:
        counts = values[docs["split"] == split].value_counts()
        for label in labels:
            n = int(counts.get(label, 0))
            if n < settings["min_label_examples"]:
                found.append(
                    (
                        split,
                        f"min_label_examples:{label}",
                        f"label {label!r} has {n} examples in the {split} split, under "
                        f"split.min_label_examples {settings['min_label_examples']}",
                    )
                )
    return found


def report_rows(
    docs: pd.DataFrame, label_column: str | None, labels: list[str]
) -> list[tuple[str, str, str, object]]:
    """(section, split, key, value) rows for sizes and label distributions per split."""
    rows = []
    for split in SPLITS:
        part = docs[docs["split"] == split]
        megabytes = part["n_bytes"].sum() / 1e6
        rows += [
            ("size", split, "documents", len(part)),
            ("size", split, "groups", part["group_id"].nunique()),
            ("size", split, "characters", int(part["n_chars"].sum())),
            ("size", split, "megabytes", round(megabytes, 3)),
        ]
        if label_column is None:
            continue
        counts = part[label_column].astype("string").fillna(MISSING_LABEL).value_counts()
        # Groups by their majority label: what stratification balances when groups differ in size.
        group_counts = group_majority_labels(part, label_column).value_counts()
        for label in labels:
            n = int(counts.get(label, 0))
            rows.append(("label_count", split, label, n))
            rows.append(("label_share", split, label, round(n / max(len(part), 1), 4)))
            rows.append(("label_groups", split, label, int(group_counts.get(label, 0))))
    return rows


def check_not_empty(docs: pd.DataFrame, fractions: dict[str, float]) -> None:
    """Fail, naming the split and the fix, when a split with a share of the corpus got no rows."""
    empty = [s for s in SPLITS if fractions[s] > 0 and not (docs["split"] == s).any()]
    if empty:
        groups = docs["group_id"].nunique()
        shares = ", ".join(f"split.{s} {fractions[s]:g}" for s in empty)
        raise ValueError(
            f"the {' and '.join(empty)} split(s) got no document ({shares}; {groups} group(s) "
            f"in all, {len(docs)} document(s)): the corpus is too small for these fractions. Add "
            "documents or groups, raise the share, or set it to 0 (with "
            "evaluation.perplexity: false for validation)"
        )


def text_facts(texts: pd.Series) -> pd.DataFrame:
    """What the split needs of each text: text_key (exact copies), n_bytes (UTF-8) and n_chars."""
    return pd.DataFrame(
        {
            "text_key": texts.map(normalised_text_hash),
            "n_bytes": texts.str.encode("utf-8").str.len(),
            "n_chars": texts.str.len(),
        },
        index=texts.index,
    )


def split_metadata(
    filtered: Sequence[str | os.PathLike], task: dict, settings: dict
) -> pd.DataFrame:
    """Ids, label and stratum columns, text facts and (shard, row) of every filtered row.

    One shard's text is in memory at a time; what is kept is a few short fields per row.
    """
    keys = {"task.label_column": task["label_column"], "split.stratify_by": settings["stratify_by"]}
    schemas = [pq.read_schema(path).names for path in filtered]
    every = list(dict.fromkeys(name for names in schemas for name in names))
    for key, column in keys.items():
        if column is not None:
            require_column(every, column, key)
    parts = []
    for shard, (path, names) in enumerate(zip(filtered, schemas, strict=True)):
        wanted = dict.fromkeys(c for c in keys.values() if c is not None and c in names)
        columns = ["doc_id", "group_id", *wanted]
        docs = read_table(path, columns=[*columns, "text"])
        docs["doc_id"] = docs["doc_id"].astype(str)
        docs["group_id"] = docs["group_id"].astype(str)
        meta = pd.concat([docs[columns], text_facts(docs["text"])], axis=1)
        parts.append(meta.assign(shard=shard, row=np.arange(len(docs))))
    return pd.concat(parts, ignore_index=True)


def mixed_type_columns(filtered: Sequence[str | os.PathLike]) -> list[str]:
    """Metadata columns typed differently in different shards ("1990" from a CSV, 1990 from a
    JSONL): they are written as text, since one Parquet column holds one type."""
    types: dict[str, set[str]] = {}
    for path in filtered:
        for field in pq.read_schema(path):
            if field.name not in RESERVED and str(field.type) != "null":
                types.setdefault(field.name, set()).add(str(field.type))
    mixed = sorted(name for name, found in types.items() if len(found) > 1)
    for column in mixed:
        warn(
            log,
            f"metadata column {column!r} is {sorted(types[column])} across shards; stored as text",
        )
    return mixed


def write_splits(
    filtered: Sequence[str | os.PathLike],
    kept: pd.DataFrame,
    by_group: dict[str, str],
    task: dict,
    outputs: dict[str, str],
) -> None:
    """Write each split's rows of `kept` (shard, row), shard by shard, in the corpus order.

    A row takes the columns of its filtered shard, its labels as normalised and its split.
    """
    as_text = mixed_type_columns(filtered)
    with contextlib.ExitStack() as stack:
        appenders = {s: stack.enter_context(parquet_appender(outputs[s])) for s in SPLITS}
        for shard, path in enumerate(filtered):
            docs = read_table(path)
            docs["doc_id"] = docs["doc_id"].astype(str)
            docs["group_id"] = docs["group_id"].astype(str)
            for column in as_text:
                docs[column] = [None if is_blank(v) else str(v) for v in docs[column]]
            docs = normalise_labels(docs, task)
            docs = docs.iloc[kept.loc[kept["shard"] == shard, "row"].to_numpy()]
            docs["split"] = docs["group_id"].map(by_group)
            for split in SPLITS:
                appenders[split](docs[docs["split"] == split].reset_index(drop=True))


def split_corpus(
    filtered: list[str],
    duplicates: str,
    settings: dict,
    task: dict,
    seed: int,
    outputs: dict[str, str],
    rejects: str,
    report: str,
) -> None:
    """Rule split: label filter, group split, leakage check and removal, tables and report."""
    docs = split_metadata(filtered, task, settings)
    if docs.empty:
        raise ValueError(
            "no document to split: the filter rule kept none. "
            "results/NAME/filtered/filter_report.tsv counts what each filter removed, "
            "results/NAME/filtered/rejects/ names each document's reason; "
            "loosen that filter in config `filter`"
        )
    docs, rejected = filter_task_labels(docs, task)
    if docs.empty:
        top = ", ".join(repr(v) for v in rejected["detail"].value_counts().index[:5])
        raise ValueError(
            f"no document to split: all {len(rejected)} have a {task['label_column']} that is not "
            f"one of task.labels {task['labels']} (most frequent: {top}); fix task.labels or "
            "task.label_column"
        )
    docs = docs.reset_index(drop=True)
    by_group = group_splits(docs, settings, seed)
    docs["split"] = docs["group_id"].map(by_group)
    pairs = read_table(duplicates, columns=["doc_id", "duplicate_of"])

    leakage = [("leakage", "all", "groups_straddling_splits", groups_straddling(docs))]
    removed = pd.Index([])
    for held_out in ("validation", "test"):
        leaks = find_leaks(docs, pairs, held_out)
        pairs_across = straddling_pairs(docs, pairs, "train", held_out)
        leakage += [
            ("leakage", held_out, "dedup_pairs_straddling_train", pairs_across),
            ("leakage", held_out, "docs_with_duplicate_in_train", len(leaks)),
        ]
        if held_out == "test" and settings["leakage"] == "remove_test_copy":
            removed = leaks.index
            details = [f"train doc {copy}" for copy in leaks["train_copy"]]
            leaked = rejects_frame(docs.loc[removed], "leakage.near_duplicate_of_train", details)
            rejected = pd.concat([rejected, leaked], ignore_index=True)
        if len(leaks):
            warn(log, f"{len(leaks)} {held_out} documents have a near or exact duplicate in train")
    leakage.append(("leakage", "test", "docs_removed", len(removed)))
    docs = docs.drop(index=removed)
    check_not_empty(docs, split_fractions(settings))
    if groups_straddling(docs):
        raise RuntimeError("a group straddles splits: assignment by group_id is broken")

    label_column = task["label_column"] or settings["stratify_by"]
    labels = task["labels"] or (
        sorted(docs[label_column].astype("string").fillna(MISSING_LABEL).unique())
        if label_column
        else []
    )
    found = size_warnings(docs, settings, label_column, labels)
    for _, _, message in found:
        warn(log, message)

    write_splits(filtered, docs[["shard", "row"]], by_group, task, outputs)
    write_table(rejected, rejects)
    rows = report_rows(docs, label_column, labels) + leakage
    rows += [
        ("rejects", "all", reason, n) for reason, n in rejected["reason"].value_counts().items()
    ]
    rows += [("warning", split, key, message) for split, key, message in found]
    write_tsv(pd.DataFrame(rows, columns=["section", "split", "key", "value"]), report)
    log.info("split sizes: %s", docs["split"].value_counts().to_dict())
