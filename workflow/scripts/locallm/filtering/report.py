"""The filter report (rule `filter_report`): documents per shard and reason, and the check that
every corpus row is kept or rejected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from locallm.tables import read_table, write_tsv


def filter_report(
    corpus: Sequence[str], kept: Sequence[str], rejects: Sequence[str], output: str | os.PathLike
) -> pd.DataFrame:
    """Rule `filter_report`: documents per shard and reason (and kept), checking the accounting."""
    rows = []
    for corpus_path, kept_path, rejects_path in zip(corpus, kept, rejects, strict=True):
        shard = os.path.splitext(os.path.basename(kept_path))[0]
        n_corpus = len(read_table(corpus_path, columns=["doc_id"]))
        n_kept = len(read_table(kept_path, columns=["doc_id"]))
        reasons = read_table(rejects_path, columns=["reason"])["reason"]
        if n_corpus != n_kept + len(reasons):
            raise ValueError(
                f"shard {shard}: {corpus_path} has {n_corpus} rows but {kept_path} ({n_kept}) + "
                f"{rejects_path} ({len(reasons)}) = {n_kept + len(reasons)}"
            )
        rows.append({"shard": shard, "reason": "corpus", "documents": n_corpus})
        rows.append({"shard": shard, "reason": "kept", "documents": n_kept})
        for reason, count in sorted(reasons.value_counts().items()):
            rows.append({"shard": shard, "reason": reason, "documents": int(count)})
    table = pd.DataFrame(rows, columns=["shard", "reason", "documents"])
    total = table.groupby("reason", as_index=False)["documents"].sum()
    first = {"corpus": "0", "kept": "1"}  # then the reasons, alphabetically
    total = total.sort_values("reason", key=lambda r: r.map(lambda x: first.get(x, "2" + x)))
    table = pd.concat([table, total.assign(shard="total")[table.columns]], ignore_index=True)
    # Share of the shard's (or the total's) corpus rows.
    corpus_rows = table[table["reason"] == "corpus"].set_index("shard")["documents"]
    table["share"] = (table["documents"] / table["shard"].map(corpus_rows).clip(lower=1)).round(4)
    write_tsv(table, output)
    return table
