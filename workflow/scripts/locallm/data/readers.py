"""Readers: each corpus file as raw records (fields, or the problem met reading them).

One reader per format (.txt, .csv/.tsv, .jsonl, .parquet). A reader never drops a record: a row it
cannot parse becomes a record with a problem (`undecodable` or `malformed_row`), which ingest
turns into a reject. A file that cannot be read at all is an error naming it (`check_readable`).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl", ".parquet")

NON_BLANK_LINES = re.compile(r"(?:[^\n]*\S[^\n]*(?:\n|$))+")  # a paragraph of a .txt file
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


def _empty_file(source: str) -> RawRecord:
    """An empty (or blank) CSV/TSV/JSONL file as one rejected record, so that it shows in the
    rejects as an empty .txt file does, instead of adding nothing without a word."""
    detail = f"{source} line 1: the file is empty (no header, no record)"
    return RawRecord(source, 0, 1, None, ("empty_text", detail))


def _strict_error(lines: list[str], delimiter: str) -> str | None:
    """What strict parsing finds wrong with these lines (a quote left open, or text after a
    closing quote), else None."""
    try:
        list(csv.reader(lines, delimiter=delimiter, strict=True))
    except csv.Error as error:
        return str(error)
    return None


def _unclosed_quote(lines: list[str], start: int, end: int, delimiter: str, max_lines: int):
    """Why the record on lines `start`..`end` (1-based) looks like an unclosed quote, or None.

    A quoted cell may span lines, but not more than `max_lines`, not to the end of the file still
    open, and not closing with text after the quote: that is a stray quote closed by one in a later
    row, which would merge the rows between into one cell.
    """
    spanned = end - start + 1
    if spanned > max_lines:
        return f"runs over {spanned} lines (corpus.max_field_lines {max_lines})"
    if spanned == 1:
        return None  # a stray quote within one line is read as the csv module reads it
    error = _strict_error(lines[start - 1 : end], delimiter)
    if error is None:
        return None
    if end == len(lines) and "unexpected end of data" in error:
        return "is still open at the end of the file"
    return f"closes on line {end} with text after it ({error})"


def read_delimited(path: Path, source: str, settings: dict, delimiter: str) -> Iterator[RawRecord]:
    """A CSV/TSV file with a header line; a row with the wrong number of fields is a problem.

    A quoted field still open at the end of the file, one closed on a later line with text after
    the closing quote, or a record over `corpus.max_field_lines` lines, is an unclosed quote: its
    first line becomes a `malformed_row` and reading starts again on the line after it, so the
    rows the quote swallowed are read as rows.
    """
    encoding, max_lines = settings["encoding"], settings["max_field_lines"]
    csv.field_size_limit(sys.maxsize)  # long documents in one cell are normal here
    text = _decode(path, encoding)
    if not text.strip():
        yield _empty_file(source)
        return
    lines = io.StringIO(text, newline="").readlines()
    header = next(csv.reader(lines[:1], delimiter=delimiter), None)
    if not header:
        yield RawRecord(source, 0, 1, None, ("malformed_row", f"{source} line 1: no header"))
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
            how = _unclosed_quote(lines, start, end_of_previous, delimiter, max_lines)
            if how is not None:
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


class NotJson(ValueError):
    """A value Python's json module reads but JSON does not allow."""


def _not_json(name: str) -> float:
    """Reject NaN and Infinity, which json.loads accepts as floats: they are not JSON, and an
    infinite year or score would pass into metadata unremarked."""
    raise NotJson(f"{name} is not a JSON value (write null for a missing value)")


def read_jsonl(path: Path, source: str, settings: dict) -> Iterator[RawRecord]:
    """A JSON Lines file: one object per non-blank line."""
    encoding = settings["encoding"]
    text = _decode(path, encoding)
    if not text.strip():
        yield _empty_file(source)
        return
    index = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue  # a blank line is not a record
        where = f"{source} line {number}"
        problem = _undecodable(line, where, encoding)
        fields = None
        if problem is None:
            try:
                value = json.loads(line, parse_constant=_not_json)
            except NotJson as error:
                problem = ("malformed_row", f"{where}: {error}")
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


def peek_columns(path: str | os.PathLike, settings: dict, lines: int = 100) -> list[str]:
    """The columns of a corpus file without reading its records: the CSV/TSV header, the keys of
    the first `lines` JSONL objects, the Parquet schema; a .txt file has only its text. Planning
    checks the configured columns against these before any job runs."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [settings["text_column"]]
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except pa.ArrowException as error:
            raise ValueError(f"corpus file {path}: not a readable Parquet file ({error})") from None
    with path.open(encoding=settings["encoding"], errors="surrogateescape", newline="") as file:
        if suffix in (".csv", ".tsv"):
            first = file.readline().removeprefix("\ufeff")
            return next(csv.reader([first], delimiter="," if suffix == ".csv" else "\t"), [])
        keys: dict[str, None] = {}
        for line in itertools.islice(file, lines):
            try:
                value = json.loads(line.removeprefix("\ufeff"))
            except (ValueError, RecursionError):
                continue  # ingest rejects the line; its keys are unknown
            if isinstance(value, dict):
                keys.update(dict.fromkeys(map(str, value)))
        return list(keys)


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
