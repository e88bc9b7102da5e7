"""Records: check one raw record and turn it into table rows (a row per chunk) or a reject.

The reasons a record is rejected for are listed in `locallm.data.ingest`.
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
from typing import Any

import pandas as pd

from locallm.data.chunking import chunk_text
from locallm.data.readers import RawRecord


def normalise(text: str, fix_encoding: bool) -> str:
    """Repair mojibake with ftfy (optional), then Unicode NFC."""
    if fix_encoding:
        import ftfy

        # Curly quotes are data (style, quotation), not an encoding error: keep them.
        text = ftfy.fix_text(text, uncurl_quotes=False)
    return unicodedata.normalize("NFC", text)


# Letters and symbols by their Unicode category that still draw nothing: Hangul fillers and the
# blank Braille pattern, used to pass blank text off as text.
BLANK_LOOKING = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def has_visible_text(text: str) -> bool:
    """True when `text` has a character that shows: not whitespace, zero-width, control or a
    blank-looking letter (BLANK_LOOKING)."""
    return any(
        not c.isspace()
        and c not in BLANK_LOOKING
        and unicodedata.category(c) not in ("Cf", "Cc", "Cn", "Co", "Cs")
        for c in text
    )


def is_blank(value: Any) -> bool:
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


# A number as people write it in a table: no digit separators (1_850) or exponent (1.85e3),
# which Python's float() would read without a word.
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


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
    if isinstance(value, str) and not PLAIN_NUMBER.fullmatch(value.strip()):
        raise Underivable(
            f"{spec['from']} {value!r} is not written as a plain decimal number like 1850 or "
            f"18.5, though Python would read it as {number:g} ({where}.bins)"
        )
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
    if is_blank(text):
        return "empty_text", f"{record.where()}: {settings['text_column']!r} is empty"
    if not isinstance(text, str):
        return "malformed_row", f"{record.where()}: text is a {type(text).__name__}, not a string"
    for column, reason in (
        (settings["id_column"], "empty_id"),
        (settings["group_column"], "empty_group"),
    ):
        if column and is_blank(fields[column]):
            return reason, f"{record.where()}: {column!r} is empty"
    # An id, group or metadata value is one cell: a list or mapping (from JSONL or Parquet) would
    # be stringified into an id or break the table's column type.
    for column in (settings["id_column"], settings["group_column"], *settings["metadata_columns"]):
        value = fields[column] if column else None
        if isinstance(value, list | dict | tuple):
            kind = type(value).__name__
            return "malformed_row", (
                f"{record.where()}: {column!r} is a {kind}, not a string, number or boolean"
            )
        # A float column of a Parquet file may hold infinities, which no table downstream means.
        if isinstance(value, float) and math.isinf(value):
            return "malformed_row", f"{record.where()}: {column!r} is {value}, not a finite number"
    return None


def document_id(record: RawRecord, settings: dict) -> str | None:
    """The id column's value, or "<source>:<record index>"; None when the id column is absent."""
    column = settings["id_column"]
    if not column:
        return f"{record.source}:{record.index}"
    if record.fields is None or is_blank(record.fields.get(column)):
        return None
    return str(record.fields[column]).strip()


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
