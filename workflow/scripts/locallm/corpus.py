"""Ingest: read raw files into records, normalise and chunk their text, assign them to shards.

Every raw record ends in exactly one place: its shard's table (as one or more chunks) or its
shard's rejects table with a reason. Reasons:

- `undecodable`: bytes not valid in `corpus.encoding` (a .txt file is rejected whole).
- `malformed_row`: a CSV/TSV row with the wrong number of fields or an unclosed quote (the
  line where the quote opens; reading resumes on the next line), a JSONL line that is not JSON,
  nested too deeply or not an object, a text value that is not a string, any other exception met
  while reading or preparing one record (the detail names it).
- `missing_column`: the text, id, group or a metadata column is absent (from a CSV/TSV/Parquet
  header: every record of that file is rejected, the detail names file and column; from a JSONL
  object: that record). A .txt record has only its text, so configuring `id_column`,
  `group_column` or `metadata_columns` rejects .txt records.
- `empty_text`: no visible text left after repair and normalisation (whitespace, zero-width and
  control characters only; an empty .txt file is one record).
- `underivable`: a `corpus.derived_columns` entry cannot be computed from the record's value (not a
  number, outside the bins, not in the map).
- `empty_id`, `empty_group`: the id or group value is null or blank.
- `duplicate_id`: an id seen before (the first record with the id is kept).

A file that cannot be read at all (a folder, a FIFO or device, an empty or broken Parquet file,
no permission) is an error naming it, raised while the DAG is built (`corpus_paths`) and by ingest.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import glob
import io
import itertools
import json
import os
import re
import stat
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
    "underivable",
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


def has_visible_text(text: str) -> bool:
    """True when `text` has a character that shows: not whitespace, zero-width or control."""
    return any(
        not c.isspace() and unicodedata.category(c) not in ("Cf", "Cc", "Cn", "Co", "Cs")
        for c in text
    )


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


# --- files ------------------------------------------------------------------------------------


def check_readable(path: str | os.PathLike) -> None:
    """Fail with one line naming `path` when it is not a corpus file ingest can read whole."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"corpus file not found: {path}") from None
    except OSError as error:
        raise ValueError(f"corpus file {path}: cannot be read ({error.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ValueError(
            f"corpus file {path}: is a folder, not a file; make corpus.paths match files only "
            "(e.g. data/*.csv instead of data/*)"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(
            f"corpus file {path}: is not a regular file (a FIFO, socket or device), which ingest "
            "could wait on forever; copy its content into a file"
        )
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(
            f"corpus file {path}: unknown suffix {suffix!r}; allowed: {', '.join(SUFFIXES)}"
        )
    if suffix == ".parquet" and info.st_size == 0:
        raise ValueError(f"corpus file {path}: is empty (0 bytes), not a Parquet file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"corpus file {path}: cannot be read (permission denied)")
    if suffix == ".parquet" and not _parquet_magic(path):
        raise ValueError(
            f"corpus file {path}: is not a Parquet file (no PAR1 at its start and end)"
        )


def _parquet_magic(path: Path) -> bool:
    """True when the file starts and ends with Parquet's magic bytes (a cheap check, no parse)."""
    if path.stat().st_size < 8:
        return False
    with path.open("rb") as file:
        head = file.read(4)
        file.seek(-4, os.SEEK_END)
        return head == b"PAR1" and file.read(4) == b"PAR1"


def corpus_paths(patterns: list[str]) -> list[str]:
    """The files matched by corpus.paths (sorted, so stable), each checked to be readable.

    A pattern that matches nothing is an error: a typo in one of several globs would otherwise
    lose a whole source without a word.
    """
    if not patterns:
        raise ValueError("config corpus.paths is empty; list the glob patterns of your files")
    matched = {pattern: glob.glob(pattern) for pattern in patterns}
    empty = [pattern for pattern, files in matched.items() if not files]
    if empty:
        raise ValueError(
            f"config corpus.paths: {', '.join(map(repr, empty))} matches no file "
            f"(relative to {os.getcwd()}); fix the pattern or remove it"
        )
    files = sorted({f for found in matched.values() for f in found})
    for path in files:
        check_readable(path)
    return files


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
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValueError(f"corpus file {path}: cannot be read ({error.strerror})") from None
    text = data.decode(encoding, errors="surrogateescape")
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


def _quote_left_open(lines: list[str], delimiter: str) -> bool:
    """True when these lines end inside a quoted field (strict parsing runs out of data)."""
    try:
        list(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error:
        return True
    return False


def read_delimited(path: Path, source: str, settings: dict, delimiter: str) -> Iterator[RawRecord]:
    """A CSV/TSV file with a header line; a row with the wrong number of fields is a problem.

    A quoted field still open at the end of the file, or a record over `corpus.max_field_lines`
    lines, is an unclosed quote: its first line becomes a `malformed_row` and reading starts again
    on the line after it, so the rows the quote swallowed are read as rows.
    """
    encoding, max_lines = settings["encoding"], settings["max_field_lines"]
    csv.field_size_limit(sys.maxsize)  # long documents in one cell are normal here
    lines = io.StringIO(_decode(path, encoding), newline="").readlines()
    header = next(csv.reader(lines[:1], delimiter=delimiter), None)
    if header is None:
        return
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ValueError(f"{source} line 1: column(s) {repeated} appear twice in the header")
    index = 0
    offset = 1  # lines before the reader's first line
    while offset < len(lines):
        reader = csv.reader(itertools.islice(lines, offset, None), delimiter=delimiter)
        end_of_previous = offset
        restart = None
        while True:
            start = end_of_previous + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                end_of_previous = offset + reader.line_num
                problem = ("malformed_row", f"{source} line {start}: {error}")
                yield RawRecord(source, index, start, None, problem)
                index += 1
                continue
            end_of_previous = offset + reader.line_num
            if not row:
                continue  # a blank line is not a record
            where = f"{source} line {start}"
            spanned = end_of_previous - start + 1
            if spanned > max_lines or (
                spanned > 1
                and end_of_previous == len(lines)
                and _quote_left_open(lines[start - 1 : end_of_previous], delimiter)
            ):
                how = (
                    "is still open at the end of the file"
                    if spanned <= max_lines
                    else f"runs over {spanned} lines (corpus.max_field_lines {max_lines})"
                )
                problem = (
                    "malformed_row",
                    f"{where}: a quoted field opened here {how}: an unclosed quote? "
                    "Reading resumes on the next line",
                )
                yield RawRecord(source, index, start, None, problem)
                index += 1
                restart = start  # 0-based index of the line after `start`
                break
            problem = _undecodable(delimiter.join(row), where, encoding)
            if problem is None and len(row) != len(header):
                problem = (
                    "malformed_row",
                    f"{where}: {len(row)} fields, the header has {len(header)}",
                )
            fields = None if problem else dict(zip(header, row, strict=True))
            yield RawRecord(source, index, start, fields, problem)
            index += 1
        if restart is None:
            return
        offset = restart


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
            except RecursionError:
                problem = ("malformed_row", f"{where}: JSON nested too deeply to read")
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
    try:
        table = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise ValueError(f"corpus file {source}: not a readable Parquet file ({error})") from None
    for index, fields in enumerate(table.to_dict(orient="records")):
        yield RawRecord(source, index, None, fields)


def read_records(path: str | os.PathLike, settings: dict) -> Iterator[RawRecord]:
    """The raw records of one file, by its suffix."""
    source = Path(path).as_posix()
    path = Path(path)
    check_readable(path)
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
    """The columns every record must have: text, id, group, metadata, derived columns' sources."""
    columns = [settings["text_column"], settings["id_column"], settings["group_column"]]
    columns += list(settings["metadata_columns"])
    columns += [spec["from"] for spec in settings["derived_columns"].values()]
    return list(dict.fromkeys(c for c in columns if c))


def metadata_names(settings: dict) -> list[str]:
    """The metadata columns of the corpus table: the configured ones, then the derived ones."""
    return list(settings["metadata_columns"]) + list(settings["derived_columns"])


def settings_problems(settings: dict) -> list[str]:
    """Corpus settings that cannot work, one line each naming the key and the fix."""
    problems = []
    clash = sorted(set(metadata_names(settings)) & set(RESERVED))
    if clash:
        problems.append(
            f"config corpus.metadata_columns / derived_columns: {clash} clash with the columns "
            f"ingest writes ({', '.join(RESERVED)}); rename them in the data or leave them out"
        )
    both = sorted(set(settings["metadata_columns"]) & set(settings["derived_columns"]))
    if both:
        problems.append(
            f"config corpus.derived_columns: {both} also in corpus.metadata_columns; "
            "give the derived column a new name"
        )
    for name, spec in settings["derived_columns"].items():
        key = f"config corpus.derived_columns.{name}"
        if ("bins" in spec) == ("map" in spec):
            problems.append(f"{key}: give either `bins` (with `labels`) or `map`, not both/neither")
        elif "bins" in spec:
            bins, labels = spec["bins"], spec.get("labels")
            if any(b >= a for a, b in zip(bins[1:], bins, strict=False)):
                problems.append(f"{key}.bins {bins}: edges must increase strictly")
            if labels is None or len(labels) != len(bins) - 1:
                problems.append(
                    f"{key}.labels: {len(bins) - 1} labels needed for {len(bins)} bin edges "
                    f"(one per interval), got {labels}"
                )
        elif "labels" in spec:
            problems.append(f"{key}.labels: only used with `bins`; remove it")
        if spec["from"] in settings["derived_columns"]:
            problems.append(f"{key}.from: {spec['from']!r} is itself derived; use its source")
    return problems


def check_settings(settings: dict) -> None:
    """Fail on corpus settings that cannot work (column clashes, derived column specs)."""
    problems = settings_problems(settings)
    if problems:
        raise ValueError("\n".join(problems))


class Underivable(ValueError):
    """A derived column's value cannot be computed from a record."""


def derive(value: Any, name: str, spec: dict) -> Any:
    """The value of derived column `name` from its source column's `value`."""
    where = f"corpus.derived_columns.{name}"
    if "map" in spec:
        mapping = {str(k): v for k, v in spec["map"].items()}
        key = str(value).strip()
        if key not in mapping:
            raise Underivable(f"{spec['from']} {value!r} is not in {where}.map")
        return mapping[key]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Underivable(f"{spec['from']} {value!r} is not a number ({where}.bins)") from None
    bins = spec["bins"]
    i = bisect.bisect_right(bins, number) - 1
    if number != number or not 0 <= i < len(bins) - 1:
        raise Underivable(
            f"{spec['from']} {value!r} is outside {where}.bins [{bins[0]:g}, {bins[-1]:g})"
        )
    return spec["labels"][i]


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
    for name, spec in settings["derived_columns"].items():
        values[name] = derive(record.fields[spec["from"]], name, spec)
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


def unexpected(record: RawRecord, error: Exception) -> tuple[str, str]:
    """The reject of a record whose reading or preparation raised `error`."""
    return "malformed_row", f"{record.where()}: {type(error).__name__}: {error}"


def prepare(
    record: RawRecord, doc_id: str, settings: dict
) -> tuple[tuple[str, str] | None, list[dict]]:
    """(problem, table rows) of a record that passed the checks: text normalised and chunked,
    derived columns computed. Any exception becomes the record's problem."""
    try:
        text = normalise(record.fields[settings["text_column"]], settings["fix_encoding"])
        if not has_visible_text(text):
            detail = "no visible text after normalisation (only spaces, zero-width or control)"
            return ("empty_text", f"{record.where()}: {detail}"), []
        return None, chunk_rows(record, doc_id, text, settings)
    except Underivable as error:
        return ("underivable", f"{record.where()}: {error}"), []
    except Exception as error:
        return unexpected(record, error), []


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


def no_record_kept(rejected: pd.DataFrame, top: int = 3) -> str:
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
        + "\n  (all reasons and details: results/corpus/rejects/)"
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
        errors.append(no_record_kept(pd.concat(all_rejected, ignore_index=True)))
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
