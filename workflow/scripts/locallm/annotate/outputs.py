"""The gather_annotations job: passages.parquet, documents.parquet, the accounting of every row."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.logs import get_logger
from locallm.tables import read_table, read_tables, write_table, write_tsv

log = get_logger(__name__)

PROVENANCE = ["variant", "stage", "model", "adapter", "engine", "gen_precision", "code_version"]


def choice_columns(choice: dict[str, Any]) -> dict[str, Any]:
    """How the stage was chosen, and whether it cleared the pre-registered bar, on every row."""
    return {
        "chosen_by": choice["chosen_by"],
        # True: cleared the bar; False: named by hand although it missed it; NA: no bar was set.
        "stage_good_enough": pd.array([choice["good_enough"]], dtype="boolean")[0],
    }


def passages_table(
    inputs: pd.DataFrame, annotations: pd.DataFrame, choice: dict[str, Any]
) -> pd.DataFrame:
    """Input rows (without text) joined one to one with their annotation; a row missing from
    either side is an error that names it."""
    missing = sorted(set(inputs["doc_id"]) - set(annotations["doc_id"]))
    extra = sorted(set(annotations["doc_id"]) - set(inputs["doc_id"]))
    if missing or extra or annotations["doc_id"].duplicated().any():
        raise ValueError(
            f"annotations do not match the input one to one: {len(missing)} input row(s) "
            f"unannotated (first {missing[:3]}), {len(extra)} unknown (first {extra[:3]}), "
            f"{int(annotations['doc_id'].duplicated().sum())} repeated"
        )
    table = inputs.drop(columns=["text"], errors="ignore").merge(
        annotations, on="doc_id", how="left", validate="one_to_one"
    )
    for name, value in choice_columns(choice).items():
        table[name] = value
    return table


def documents_table(passages: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Per document: its passages' label shares, the majority label (ties: `tie`), passage count."""
    key = ["document_id"]
    first = ["group_id", "origin", "split", *PROVENANCE, "chosen_by", "stage_good_enough"]
    grouped = passages.groupby(key, sort=True)
    documents = grouped[[c for c in first if c in passages]].first()
    documents["n_passages"] = grouped.size()
    shares = pd.DataFrame(
        {
            f"share_{label}": (passages["predicted_label"] == label)
            .groupby(passages["document_id"])
            .mean()
            for label in labels
        }  # fmt: skip
    )
    documents = documents.join(shares)
    top = shares.max(axis=1)
    winners = shares.eq(top, axis=0)
    documents["majority_label"] = [
        labels[list(row).index(True)] if sum(row) == 1 else "tie" for row in winners.to_numpy()
    ]
    return documents.reset_index()


def gather_annotations(
    *,
    shards: Sequence[str | Path],
    input_table: str | Path,
    input_counts: str | Path,
    choice: str | Path,
    labels: Sequence[str],
    passages: str | Path,
    documents: str | Path,
    accounting: str | Path,
) -> None:
    """Join every shard's annotations to the input; write the two tables and the accounting."""
    chosen = json.loads(Path(choice).read_text())
    inputs = read_table(input_table)
    table = passages_table(inputs, read_tables(list(shards)), chosen)
    counts = pd.read_csv(input_counts, sep="\t")
    written = table.groupby("origin").size()
    counts["passages_written"] = counts["origin"].map(written).fillna(0).astype(int)
    unequal = counts[counts["passages_written"] != counts["passages_annotated"]]
    if len(unequal):
        raise ValueError(f"passages written differ from passages to annotate:\n{unequal}")
    log.info("accounting:\n%s", counts.to_string(index=False))
    write_table(table, passages)
    write_table(documents_table(table, labels), documents)
    write_tsv(counts, accounting)


def write_csv_copies(tables: dict[str, str | Path], outputs: dict[str, str | Path]) -> None:
    """CSV copies of the annotation tables (annotate.csv), for Stata and SPSS users."""
    from locallm.tables import atomic_path

    for name, path in tables.items():
        with atomic_path(outputs[name]) as tmp:
            read_table(path).to_csv(tmp, index=False)
