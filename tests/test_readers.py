"""Readers: each format's records with file and line, and the problems met reading them."""

from pathlib import Path

import pandas as pd
import pytest
from locallm.config import with_defaults
from locallm.data.readers import read_records


def corpus_settings(**overrides) -> dict:
    """The corpus section with the schema's defaults and `overrides`."""
    return with_defaults({"corpus": overrides})["corpus"]


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def test_txt_is_one_document_per_file(tmp_path):
    path = write(tmp_path / "a.txt", "First paragraph.\n\nSecond paragraph.\n")
    records = list(read_records(path, corpus_settings()))
    assert [r.fields["text"] for r in records] == ["First paragraph.\n\nSecond paragraph.\n"]


def test_txt_paragraphs_split_on_blank_lines_with_line_numbers(tmp_path):
    path = write(tmp_path / "a.txt", "One\nstill one.\n\n  \nTwo.\n\n\nThree.")
    records = list(read_records(path, corpus_settings(txt_split="paragraphs")))
    assert [r.fields["text"] for r in records] == ["One\nstill one.", "Two.", "Three."]
    assert [r.index for r in records] == [0, 1, 2]
    assert [r.line for r in records] == [1, 5, 8]


def test_csv_reads_quoted_multiline_cells_and_names_malformed_rows(tmp_path):
    path = write(tmp_path / "a.csv", 'text,year\n"x, y",1990\n"two\nlines",1991\nbad,1,2\n')
    records = list(read_records(path, corpus_settings()))
    assert records[0].fields == {"text": "x, y", "year": "1990"}
    assert records[1].fields == {"text": "two\nlines", "year": "1991"}
    assert records[2].problem == ("malformed_row", f"{path} line 5: 3 fields, the header has 2")


def test_csv_with_a_repeated_header_column_is_an_error_naming_it(tmp_path):
    path = write(tmp_path / "a.csv", "text,year,year\nx,1,2\n")
    with pytest.raises(ValueError, match=r"a\.csv line 1: column\(s\) \['year'\] appear twice"):
        list(read_records(path, corpus_settings()))


def test_tsv_splits_on_tabs(tmp_path):
    path = write(tmp_path / "a.tsv", "text\tparty\nhello, world\tWhig\n")
    records = list(read_records(path, corpus_settings()))
    assert records[0].fields == {"text": "hello, world", "party": "Whig"}


def test_jsonl_rejects_broken_and_non_object_lines_with_line_numbers(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"text": "ok"}\n{"text": \n\n[1, 2]\n')
    records = list(read_records(path, corpus_settings()))
    assert records[0].fields == {"text": "ok"}
    assert records[1].problem[0] == "malformed_row"
    assert records[1].problem[1].startswith(f"{path} line 2: not valid JSON")
    assert records[2].problem == ("malformed_row", f"{path} line 4: a JSON list, not an object")
    assert [r.index for r in records] == [0, 1, 2]


def test_parquet_is_one_record_per_row(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({"text": ["a", "b"], "year": [1, 2]}).to_parquet(path)
    records = list(read_records(path, corpus_settings()))
    assert [r.fields for r in records] == [{"text": "a", "year": 1}, {"text": "b", "year": 2}]


def test_unknown_suffix_is_an_error_naming_the_file(tmp_path):
    path = write(tmp_path / "a.docx", "x")
    with pytest.raises(ValueError, match=r"a\.docx: unknown suffix '\.docx'"):
        read_records(path, corpus_settings())


def test_undecodable_bytes_reject_the_row_naming_the_encoding(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes("text\nfine\ncaf\u00e9\n".encode("latin-1"))
    records = list(read_records(path, corpus_settings()))
    assert records[0].fields == {"text": "fine"}
    assert records[1].problem == (
        "undecodable",
        f"{path.as_posix()} line 3: bytes b'\\xe9' are not valid utf-8",
    )


def test_configured_encoding_decodes_latin1(tmp_path):
    path = write(tmp_path / "a.txt", "caf\u00e9", encoding="latin-1")
    records = list(read_records(path, corpus_settings(encoding="latin-1")))
    assert records[0].fields["text"] == "caf\u00e9"
