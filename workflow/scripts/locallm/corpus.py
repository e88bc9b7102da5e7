"""Ingest: read raw files into records, normalise and chunk their text, assign them to shards.

Every raw record ends in exactly one place: its shard's table (as one or more chunks) or its
shard's rejects table with a reason. Reasons:

- `undecodable`: bytes not valid in `corpus.encoding` (a .txt file is rejected whole).
- `malformed_row`: a CSV/TSV row with the wrong number of fields, a JSONL line that is not JSON or
  not an object, a text value that is not a string.
- `missing_column`: the text, id, group or a metadata column is absent (from a CSV/TSV/Parquet
  header: every record of that file is rejected, the detail names file and column; from a JSONL
  object: that record). A .txt record has only its text, so configuring `id_column`,
  `group_column` or `metadata_columns` rejects .txt records.
- `empty_text`: no text left after repair and normalisation (an empty .txt file is one record).
- `empty_id`, `empty_group`: the id or group value is null or blank.
- `duplicate_id`: an id seen before (the first record with the id is kept).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import sys
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.logs import get_logger, warn
from locallm.tables import read_table, write_json, write_table, write_tsv

log = get_logger(__name__)

SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")
RESERVED = ("doc_id", "group_id", "text", "source", "source_record", "chunk")
REJECT_COLUMNS = ["source", "source_record", "doc_id", "reason", "detail"]
REASONS = (
    "undecodable",
    "malformed_row",
    "missing_column",
    "empty_text",
    "empty_id",
    "empty_group",
    "duplicate_id",
)

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
NON_BLANK_LINES = re.compile(r"(?:[^\n]*\S[^\n]*(?:\n|$))+")  # a paragraph of a .txt file
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
WHITESPACE = re.compile(r"\s+")
# Bytes that do not decode become lone surrogates U+DC80..U+DCFF under `surrogateescape`.
ESCAPED_BYTE = re.compile("[\udc80-\udcff]+")


@dataclass(slots=True)
class RawRecord:
    """One record as read from a file, before any check: fields, or the problem met reading it."""

    source: str
    index: int  # 0-based record index within its file: part of the derived doc_id
    line: int | None  # 1-based line where the record starts (None for Parquet rows)
    fields: dict[str, Any] | None
    problem: tuple[str, str] | None = None  # (reason, detail)

    def where(self) -> str:
        """File and line (or row) for messages."""
        return f"{self.source} line {self.line}" if self.line else f"{self.source} row {self.index}"


# --- text -------------------------------------------------------------------------------------


def normalise(text: str, fix_encoding: bool) -> str:
    """Repair mojibake with ftfy (optional), then Unicode NFC."""
    if fix_encoding:
        import ftfy

        # Curly quotes are data (style, quotation), not an encoding error: keep them.
        text = ftfy.fix_text(text, uncurl_quotes=False)
    return unicodedata.normalize("NFC", text)


def _pack(pieces: list[str], sep: str, limit: int) -> list[str]:
    """Join consecutive pieces (each at most `limit`) into chunks of at most `limit`."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(sep) + len(piece) <= limit:
            current += sep + piece
        else:
            if current:
                chunks.append(current)
            current = piece
    if current:
        chunks.append(current)
    return chunks


# From coarse to fine: paragraphs joined by a blank line, then sentences, then words.
_SPLITTERS = ((PARAGRAPH_BREAK, "\n\n"), (SENTENCE_END, " "), (WHITESPACE, " "))


def _split_to_fit(piece: str, limit: int, level: int) -> list[str]:
    """Cut `piece` at the coarsest boundaries that make every part fit, and pack the parts."""
    if len(piece) <= limit:
        return [piece]
    if level == len(_SPLITTERS):
        # A single word longer than the limit: cut it by characters.
        return [piece[i : i + limit] for i in range(0, len(piece), limit)]
    pattern, sep = _SPLITTERS[level]
    parts = [p.strip() for p in pattern.split(piece)]
    fitted = [f for p in parts if p for f in _split_to_fit(p, limit, level + 1)]
    return _pack(fitted, sep, limit)


def chunk_text(text: str, max_chars: int) -> list[str]:
    """Paragraph-bounded chunks of at most `max_chars` characters (0: the text whole)."""
    if max_chars <= 0 or len(text) <= max_chars:
        return [text]
    return _split_to_fit(text.strip(), max_chars, 0)


# --- sharding ---------------------------------------------------------------------------------


def file_shard(path: str | os.PathLike, shards: int) -> int:
    """The shard of a file: a hash of its path, the same in every process and on every run."""
    return zlib.crc32(Path(path).as_posix().encode("utf-8")) % shards


def shards_by_file(n_files: int, shards: int) -> bool:
    """True when files are assigned to shards whole; False when records are strided over shards."""
    return n_files >= shards


def files_by_shard(files: list[str], shards: int) -> dict[int, list[str]]:
    """Every shard's files in one pass: those that hash to it, or all of them when records are
    strided (the DAG asks for each of its ingest jobs, so hashing per job would be quadratic).
    """
    if not shards_by_file(len(files), shards):
        return {shard: list(files) for shard in range(shards)}
    by_shard: dict[int, list[str]] = {shard: [] for shard in range(shards)}
    for f in files:
        by_shard[file_shard(f, shards)].append(f)
    return by_shard


def shard_files(files: list[str], shard: int, shards: int) -> list[str]:
    """The files one shard reads: those that hash to it, or all of them when records are strided."""
    return files_by_shard(files, shards)[shard]


# --- readers ----------------------------------------------------------------------------------


def _decode(path: Path, encoding: str) -> str:
    """The file's text; undecodable bytes are kept as lone surrogates, to be rejected per record."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(
            f"config corpus.encoding: {encoding!r} is not an encoding Python knows "
            "(e.g. utf-8, latin-1, cp1252)"
        ) from None
    text = path.read_bytes().decode(encoding, errors="surrogateescape")
    return text.removeprefix("\ufeff")  # a byte-order mark is not part of the first field


def _undecodable(text: str, where: str, encoding: str) -> tuple[str, str] | None:
    """The `undecodable` problem if `text` holds bytes that did not decode, else None."""
    match = ESCAPED_BYTE.search(text)
    if match is None:
        return None
    raw = bytes(ord(c) - 0xDC00 for c in match.group()[:8])
    return "undecodable", f"{where}: bytes {raw!r} are not valid {encoding}"


def read_txt(path: Path, source: str, settings: dict) -> Iterator[RawRecord]:
    """A .txt file as one record, or one record per blank-line separated paragraph."""
    encoding, column = settings["encoding"], settings["text_column"]
    text = _decode(path, encoding)
    match = ESCAPED_BYTE.search(text)
    if match is not None:
        line = text.count("\n", 0, match.start()) + 1
        yield RawRecord(source, 0, 1, None, _undecodable(text, f"{source} line {line}", encoding))
        return
    if settings["txt_split"] == "document":
        yield RawRecord(source, 0, 1, {column: text})
        return
    paragraphs = [(m.start(), m.group().strip()) for m in NON_BLANK_LINES.finditer(text)]
    if not paragraphs:
        # An empty file still counts as one record, so that its absence shows in the rejects.
        yield RawRecord(source, 0, 1, {column: text})
        return
    line, counted_to = 1, 0
    for index, (start, paragraph) in enumerate(paragraphs):
        line += text.count("\n", counted_to, start)  # counted incrementally: linear in the file
        counted_to = start
        yield RawRecord(source, index, line, {column: paragraph})


def read_delimited(path: Path, source: str, settings: dict, delimiter: str) -> Iterator[RawRecord]:
    """A CSV/TSV file with a header line; a row with the wrong number of fields is a problem."""
    encoding = settings["encoding"]
    csv.field_size_limit(sys.maxsize)  # long documents in one cell are normal here
    reader = csv.reader(io.StringIO(_decode(path, encoding), newline=""), delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        return
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ValueError(f"{source} line 1: column(s) {repeated} appear twice in the header")
    index = 0
    end_of_previous = reader.line_num
    while True:
        start = end_of_previous + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            end_of_previous = reader.line_num
            problem = ("malformed_row", f"{source} line {start}: {error}")
            yield RawRecord(source, index, start, None, problem)
            index += 1
            continue
        end_of_previous = reader.line_num
        if not row:
            continue  # a blank line is not a record
        where = f"{source} line {start}"
        problem = _undecodable(delimiter.join(row), where, encoding)
        if problem is None and len(row) != len(header):
            problem = (
                "malformed_row",
                f"{where}: {len(row)} fields, the header has {len(header)}",
            )
        fields = None if problem else dict(zip(header, row, strict=True))
        yield RawRecord(source, index, start, fields, problem)
        index += 1


def read_jsonl(path: Path, source: str, settings: dict) -> Iterator[RawRecord]:
    """A JSON Lines file: one object per non-blank line."""
    encoding = settings["encoding"]
    index = 0
    for number, line in enumerate(_decode(path, encoding).split("\n"), start=1):
        if not line.strip():
            continue  # a blank line is not a record
        where = f"{source} line {number}"
        problem = _undecodable(line, where, encoding)
        fields = None
        if problem is None:
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                problem = ("malformed_row", f"{where}: not valid JSON ({error.msg})")
            else:
                if isinstance(value, dict):
                    fields = value
                else:
                    problem = (
                        "malformed_row",
                        f"{where}: a JSON {type(value).__name__}, not an object",
                    )
        yield RawRecord(source, index, number, fields, problem)
        index += 1


def read_parquet(path: Path, source: str, settings: dict) -> Iterator[RawRecord]:
    """A Parquet file: one record per row."""
    table = pd.read_parquet(path)
    for index, fields in enumerate(table.to_dict(orient="records")):
        yield RawRecord(source, index, None, fields)


def read_records(path: str | os.PathLike, settings: dict) -> Iterator[RawRecord]:
    """The raw records of one file, by its suffix."""
    source = Path(path).as_posix()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"corpus file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return read_txt(path, source, settings)
    if suffix in (".csv", ".tsv"):
        return read_delimited(path, source, settings, "," if suffix == ".csv" else "\t")
    if suffix == ".jsonl":
        return read_jsonl(path, source, settings)
    if suffix == ".parquet":
        return read_parquet(path, source, settings)
    raise ValueError(
        f"corpus file {path}: unknown suffix {suffix!r}; allowed: {', '.join(SUFFIXES)}"
    )


# --- checks -----------------------------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    """True for None, NaN and whitespace-only strings."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


def required_columns(settings: dict) -> list[str]:
    """The columns every record must have: text, id, group, metadata (in that order)."""
    columns = [settings["text_column"], settings["id_column"], settings["group_column"]]
    return [c for c in columns if c] + list(settings["metadata_columns"])


def check_settings(settings: dict) -> None:
    """Reject metadata column names that would collide with the columns ingest writes."""
    clash = sorted(set(settings["metadata_columns"]) & set(RESERVED))
    if clash:
        raise ValueError(
            f"config corpus.metadata_columns: {clash} clash with the columns ingest writes "
            f"({', '.join(RESERVED)}); rename them in the data or leave them out"
        )


def record_problem(record: RawRecord, settings: dict) -> tuple[str, str] | None:
    """The first reason to reject `record` that needs no text normalisation, or None."""
    if record.problem is not None:
        return record.problem
    fields = record.fields
    for column in required_columns(settings):
        if column not in fields:
            has = ", ".join(map(str, fields))
            return "missing_column", f"{record.where()}: no column {column!r} (it has: {has})"
    text = fields[settings["text_column"]]
    if _is_blank(text):
        return "empty_text", f"{record.where()}: {settings['text_column']!r} is empty"
    if not isinstance(text, str):
        return "malformed_row", f"{record.where()}: text is a {type(text).__name__}, not a string"
    for column, reason in (
        (settings["id_column"], "empty_id"),
        (settings["group_column"], "empty_group"),
    ):
        if column and _is_blank(fields[column]):
            return reason, f"{record.where()}: {column!r} is empty"
    return None


def document_id(record: RawRecord, settings: dict) -> str | None:
    """The id column's value, or "<source>:<record index>"; None when the id column is absent."""
    column = settings["id_column"]
    if not column:
        return f"{record.source}:{record.index}"
    if record.fields is None or _is_blank(record.fields.get(column)):
        return None
    return str(record.fields[column]).strip()


# --- ingest -----------------------------------------------------------------------------------


def _uniform_metadata(kept: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Cast a metadata column that mixes types ("1990" from CSV, 1990 from JSONL) to str."""
    for column in columns:
        types = {type(v) for v in kept[column] if not _is_blank(v)}
        if len(types) > 1:
            log.warning(
                "metadata column %r mixes %s; stored as text",
                column,
                sorted(t.__name__ for t in types),
            )
            kept[column] = [None if _is_blank(v) else str(v) for v in kept[column]]
    return kept


def chunk_rows(record: RawRecord, doc_id: str, text: str, settings: dict) -> list[dict]:
    """The table rows of one kept record: a row per chunk, all in the document's group."""
    group_column = settings["group_column"]
    group_id = str(record.fields[group_column]).strip() if group_column else doc_id
    values = {c: record.fields[c] for c in settings["metadata_columns"]}
    chunked = settings["chunk_chars"] > 0
    return [
        {
            "doc_id": f"{doc_id}#{k}" if chunked else doc_id,
            "group_id": group_id,
            "text": chunk,
            **values,
            "source": record.source,
            "source_record": record.index,
            "chunk": k,
        }
        for k, chunk in enumerate(chunk_text(text, settings["chunk_chars"]))
    ]


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
    metadata = list(settings["metadata_columns"])
    text_column = settings["text_column"]
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
            problem = record_problem(record, settings)
            doc_id = document_id(record, settings)
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
                text = normalise(record.fields[text_column], settings["fix_encoding"])
                if text.strip():
                    kept_rows.extend(chunk_rows(record, doc_id, text, settings))
                    continue
                problem = ("empty_text", f"{record.where()}: no text left after normalisation")
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
    kept = _uniform_metadata(pd.DataFrame(kept_rows, columns=columns), metadata)
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


# --- report -----------------------------------------------------------------------------------


def _record_keys(table: pd.DataFrame) -> pd.Series:
    """One "<source>:<record index>" key per row, naming the raw record the row came from."""
    return table.source.astype(str) + ":" + table.source_record.astype(str)


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
    tables = []
    for shard, kept_path, rejects_path, counts_path in zip(
        shards, kept, rejects, counts, strict=True
    ):
        table = read_table(kept_path, columns=["doc_id", "source", "source_record"])
        rejected = read_table(rejects_path, columns=["source", "source_record", "reason"])
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
        errors.append("no record was kept: check corpus.text_column and the rejects' reasons")
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
