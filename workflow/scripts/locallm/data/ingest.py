"""Ingest: locate the corpus files, assign them to shards, read each record (`readers`), keep
it as chunks or reject it (`records`), and write each shard's table and rejects.

Every raw record ends in exactly one place: its shard's table (as one or more chunks) or its
shard's rejects table with a reason. Reasons:

- `undecodable`: bytes not valid in `corpus.encoding` (a .txt file is rejected whole).
- `malformed_row`: a CSV/TSV row with the wrong number of fields or an unclosed quote (the
  line where the quote opens; reading resumes on the next line), a JSONL line that is not JSON,
  nested too deeply, not an object or holding NaN/Infinity, a text value that is not a string, an
  id, group or metadata value that is a list or mapping, any other exception met while reading or
  preparing one record (the detail names it).
- `missing_column`: the text, id, group or a metadata column is absent (from a CSV/TSV/Parquet
  header: every record of that file is rejected, the detail names file and column; from a JSONL
  object: that record). A .txt record has only its text, so configuring `id_column`,
  `group_column` or `metadata_columns` rejects .txt records.
- `empty_text`: no visible text left after repair and normalisation (whitespace, zero-width,
  control characters and blank-looking letters such as U+3164 only; an empty file of any text
  format is one record).
- `underivable`: a `corpus.derived_columns` entry cannot be computed from the record's value (not a
  plain decimal number, e.g. 1_850 or 1.85e3, outside the bins, not in the map).
- `empty_id`, `empty_group`: the id or group value is null or blank.
- `duplicate_id`: an id seen before (the first record with the id is kept).

A file that cannot be read at all (a folder, a FIFO or device, an empty or broken Parquet file,
no permission) is an error naming it, raised while the DAG is built (`corpus_paths`) and by ingest.
"""

from __future__ import annotations

import os
from collections import Counter

import pandas as pd

from locallm.data.readers import read_records
from locallm.data.records import document_id, is_blank, prepare, record_problem, unexpected
from locallm.data.sources import (
    REJECT_COLUMNS,
    check_settings,
    file_shard,
    metadata_names,
    shards_by_file,
)
from locallm.logs import get_logger, warn
from locallm.tables import write_json, write_table

log = get_logger(__name__)

# --- ingest -----------------------------------------------------------------------------------


def uniform_metadata(table: pd.DataFrame, columns: list[str], where: str = "") -> pd.DataFrame:
    """Cast a metadata column that mixes types ("1990" from CSV, 1990 from JSONL) to str.

    Ingest does it per shard; the split does it again over all shards, where one shard's column
    may be numbers and another's text (Parquet cannot hold both in one column).
    """
    for column in columns:
        types = {type(v) for v in table[column] if not is_blank(v)}
        if len(types) > 1:
            log.warning(
                "metadata column %r mixes %s%s; stored as text",
                column,
                sorted(t.__name__ for t in types),
                where,
            )
            table[column] = [None if is_blank(v) else str(v) for v in table[column]]
    return table


def ingest_records(
    files: list[str], shard: int, settings: dict, whole_files: bool | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(kept chunks, rejects, raw records seen) of one shard of the corpus.

    `files` is the whole corpus, or only the shard's files when `whole_files` says how the corpus
    is sharded (Snakemake gives each ingest job only its own files when files are sharded whole).
    """
    check_settings(settings)
    shards = settings["shards"]
    if whole_files is None:
        whole_files = shards_by_file(len(files), shards)
    if whole_files:
        files = [f for f in files if file_shard(f, shards) == shard]
    metadata = metadata_names(settings)
    first_seen: dict[str, str] = {}  # id -> where the first record with it was read
    kept_rows: list[dict] = []
    reject_rows: list[dict] = []
    raw = 0
    stride_index = 0
    for path in files:
        raw_before = raw
        for record in read_records(path, settings):
            # In stride mode every shard reads every record, so the id bookkeeping below agrees
            # across shards; each shard then keeps only its own records.
            mine = whole_files or stride_index % shards == shard
            stride_index += 1
            try:
                problem = record_problem(record, settings)
                doc_id = document_id(record, settings)
            except Exception as error:  # one odd record must not fail the job: it is a reject
                problem, doc_id = unexpected(record, error), None
            if problem is None and settings["id_column"]:
                if doc_id in first_seen:
                    problem = (
                        "duplicate_id",
                        f"{record.where()}: id {doc_id!r} already at {first_seen[doc_id]}",
                    )
                else:
                    first_seen[doc_id] = record.where()
            if not mine:
                continue
            raw += 1
            if problem is None:
                problem, rows = prepare(record, doc_id, settings)
                if problem is None:
                    kept_rows.extend(rows)
                    continue
            reason, detail = problem
            reject_rows.append(
                {
                    "source": record.source,
                    "source_record": record.index,
                    "doc_id": doc_id,
                    "reason": reason,
                    "detail": detail,
                }
            )
        log.info("%s: %d record(s) for this shard", path, raw - raw_before)
    columns = ["doc_id", "group_id", "text", *metadata, "source", "source_record", "chunk"]
    kept = uniform_metadata(pd.DataFrame(kept_rows, columns=columns), metadata)
    kept = kept.astype(
        {
            "doc_id": str,
            "group_id": str,
            "text": str,
            "source": str,
            "source_record": "int64",
            "chunk": "int64",
        }
    )
    rejects = pd.DataFrame(reject_rows, columns=REJECT_COLUMNS).astype(
        {"source": str, "source_record": "int64", "doc_id": object, "reason": str, "detail": str}
    )
    return kept, rejects, raw


def ingest_shard(
    files: list[str],
    shard: str,
    settings: dict,
    kept: str | os.PathLike,
    rejects: str | os.PathLike,
    counts: str | os.PathLike,
    whole_files: bool | None = None,
) -> None:
    """Ingest one shard: write its table, its rejects and the count of raw records it saw."""
    if whole_files is None:
        whole_files = shards_by_file(len(files), settings["shards"])
    mode = "whole files by path hash" if whole_files else "records by index stride"
    log.info("shard %s of %d, %d file(s), %s", shard, settings["shards"], len(files), mode)
    table, rejected, raw = ingest_records(list(files), int(shard), settings, whole_files)
    if raw == 0:
        warn(log, f"ingest shard {shard}: no records (files hash to other shards, or are empty)")
    reasons = Counter(rejected.reason)
    log.info(
        "raw records %d: kept %d (%d chunks), rejected %d %s",
        raw,
        table.source_record.groupby(table.source).nunique().sum() if len(table) else 0,
        len(table),
        len(rejected),
        dict(sorted(reasons.items())),
    )
    write_table(table, kept)
    write_table(rejected, rejects)
    write_json({"shard": shard, "raw_records": raw, "files": list(files)}, counts)
