"""The ingest report: counts per shard and reject reason, and the check that every raw record is
accounted for (kept or rejected, once, in one shard).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pandas as pd

from locallm.data.sources import REASONS
from locallm.logs import get_logger
from locallm.tables import read_table, write_tsv

log = get_logger(__name__)


def _record_keys(table: pd.DataFrame) -> pd.Series:
    """One "<source>:<record index>" key per row, naming the raw record the row came from."""
    return table.source.astype(str) + ":" + table.source_record.astype(str)


def no_record_kept(rejected: pd.DataFrame, rejects_folder: str, top: int = 3) -> str:
    """The error when ingest kept nothing: the most frequent reject reasons, with an example."""
    if rejected.empty:
        return "no record was kept and none was rejected: the corpus files hold no records"
    counts = rejected.reason.value_counts()
    lines = [
        f"{reason}: {n} record(s), e.g. {rejected.detail[rejected.reason == reason].iloc[0]}"
        for reason, n in counts.head(top).items()
    ]
    return (
        f"no record was kept; of {len(rejected)} rejected, the top reasons:\n    "
        + "\n    ".join(lines)
        + f"\n  (all reasons and details: {rejects_folder}/)"
    )


def ingest_report(
    kept: list[str], rejects: list[str], counts: list[str], shards: list[str]
) -> pd.DataFrame:
    """Counts per shard and reason; raises if a record is lost or doubled or a doc_id repeats.

    The identity checked per shard: raw records seen = kept records + rejected records (a kept
    record may yield several chunks, so kept records are the distinct source records of the table).
    """
    rows = []
    errors = []
    owner: dict[str, str] = {}
    tables, all_rejected = [], []
    for shard, kept_path, rejects_path, counts_path in zip(
        shards, kept, rejects, counts, strict=True
    ):
        table = read_table(kept_path, columns=["doc_id", "source", "source_record"])
        rejected = read_table(rejects_path, columns=["source", "source_record", "reason", "detail"])
        raw = json.loads(Path(counts_path).read_text())["raw_records"]
        kept_keys = set(_record_keys(table))
        reject_keys = _record_keys(rejected)
        both = kept_keys & set(reject_keys)
        if both:
            errors.append(
                f"shard {shard}: {len(both)} record(s) both kept and rejected, "
                f"e.g. {sorted(both)[:3]}"
            )
        if reject_keys.duplicated().any():
            errors.append(
                f"shard {shard}: record(s) rejected twice, "
                f"e.g. {reject_keys[reject_keys.duplicated()].head(3).tolist()}"
            )
        doubled = sorted(k for k in kept_keys | set(reject_keys) if k in owner)
        if doubled:
            errors.append(
                f"shard {shard}: {len(doubled)} record(s) also in an earlier shard, "
                f"e.g. {doubled[0]} (in shard {owner[doubled[0]]})"
            )
        owner.update(dict.fromkeys(kept_keys | set(reject_keys), shard))
        if raw != len(kept_keys) + len(rejected):
            errors.append(
                f"shard {shard}: raw records {raw} != kept records {len(kept_keys)} + "
                f"rejected {len(rejected)} ({raw - len(kept_keys) - len(rejected):+d} unaccounted)"
            )
        row = {
            "shard": shard,
            "raw_records": raw,
            "kept_records": len(kept_keys),
            "kept_chunks": len(table),
            "rejected": len(rejected),
        }
        by_reason = Counter(rejected.reason)
        unknown = sorted(set(by_reason) - set(REASONS))
        if unknown:
            errors.append(f"shard {shard}: reject reason(s) {unknown} not in {REASONS}")
        row.update({f"rejected_{reason}": by_reason[reason] for reason in REASONS})
        rows.append(row)
        tables.append(table.assign(shard=shard))
        all_rejected.append(rejected)
    all_kept = pd.concat(tables, ignore_index=True)
    repeated = all_kept[all_kept.doc_id.duplicated(keep=False)]
    if len(repeated):
        examples = repeated.sort_values("doc_id").head(4)
        errors.append(
            "doc_id repeats (the same id_column value in files of different shards): "
            + "; ".join(
                f"{r.doc_id} in {r.source} (shard {r.shard})" for r in examples.itertuples()
            )
        )
    report = pd.DataFrame(rows)
    total = report.drop(columns="shard").sum().to_dict()
    report = pd.concat([report, pd.DataFrame([{"shard": "all", **total}])], ignore_index=True)
    reason_columns = [f"rejected_{reason}" for reason in REASONS]
    report = report[
        ["shard", "raw_records", "kept_records", "kept_chunks", "rejected", *reason_columns]
    ]
    report = report.astype({c: "int64" for c in report.columns if c != "shard"})
    if total["kept_records"] == 0 and not errors:
        folder = os.path.commonpath([os.path.dirname(p) or "." for p in rejects])
        errors.append(no_record_kept(pd.concat(all_rejected, ignore_index=True), folder))
    if errors:
        log.error("ingest report:\n%s", report.to_string(index=False))
        raise ValueError("ingest accounting failed:\n  " + "\n  ".join(errors))
    return report


def write_ingest_report(
    kept: list[str], rejects: list[str], counts: list[str], shards: list[str], output: str
) -> None:
    """Check the ingest accounting over all shards and write the counts as TSV."""
    report = ingest_report(kept, rejects, counts, shards)
    log.info("ingest report:\n%s", report.to_string(index=False))
    write_tsv(report, output)
