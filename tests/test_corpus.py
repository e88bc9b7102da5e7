"""Ingest: repair and NFC, ids and groups, sharding, rejects and the accounting identity."""

import json
import shutil
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
from locallm.config import with_defaults
from locallm.data.ingest import ingest_records, ingest_shard
from locallm.data.ingest_report import ingest_report
from locallm.data.readers import read_records
from locallm.data.records import normalise
from locallm.data.sources import (
    corpus_paths,
    file_shard,
    files_by_shard,
    shard_files,
    shards_by_file,
)
from test_chunking import DOCUMENT

MESSY = Path(__file__).parent / "data" / "messy"
MESSY_FILES = sorted(str(p) for p in MESSY.iterdir() if p.suffix != ".md")
HOSTILE = Path(__file__).parent / "data" / "hostile"
HOSTILE_FILES = sorted(
    str(p) for p in HOSTILE.iterdir() if p.name not in ("README.md", "expected.tsv")
)


def corpus_settings(**overrides) -> dict:
    """The corpus section with the schema's defaults and `overrides`."""
    return with_defaults({"corpus": overrides})["corpus"]


def ingest_all(files: list[str], settings: dict) -> tuple[pd.DataFrame, pd.DataFrame, list[int]]:
    """Kept and rejected rows of every shard, with the raw count each shard saw."""
    kept, rejected, raws = [], [], []
    for shard in range(settings["shards"]):
        k, r, raw = ingest_records(files, shard, settings)
        kept.append(k.assign(shard=shard))
        rejected.append(r.assign(shard=shard))
        raws.append(raw)
    return pd.concat(kept, ignore_index=True), pd.concat(rejected, ignore_index=True), raws


def write(path: Path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


# --- normalisation ----------------------------------------------------------------------------


def test_ftfy_repairs_mojibake():
    assert normalise("cafÃ©", fix_encoding=True) == "café"


def test_repair_keeps_curly_quotes():
    assert normalise("\u201cYes,\u201d she said", fix_encoding=True) == "\u201cYes,\u201d she said"


def test_mojibake_stays_without_fix_encoding():
    assert normalise("cafÃ©", fix_encoding=False) == "cafÃ©"


def test_nfc_composes_combining_characters():
    decomposed = "cafe\u0301"
    out = normalise(decomposed, fix_encoding=False)
    assert out == "caf\u00e9"
    assert unicodedata.is_normalized("NFC", out)


# --- chunks -----------------------------------------------------------------------------------


def test_chunks_share_their_documents_group_id(tmp_path):
    path = write(tmp_path / "a.jsonl", json.dumps({"text": DOCUMENT}) + "\n")
    kept, rejected, _ = ingest_records([path], 0, corpus_settings(chunk_chars=40, shards=1))
    assert len(kept) > 1
    assert kept.group_id.unique().tolist() == [f"{Path(path).as_posix()}:0"]
    assert kept.doc_id.tolist() == [f"{Path(path).as_posix()}:0#{k}" for k in range(len(kept))]
    assert kept.chunk.tolist() == list(range(len(kept)))
    assert rejected.empty


# --- ids, groups, metadata --------------------------------------------------------------------


def test_id_group_and_metadata_columns_are_carried(tmp_path):
    rows = [
        {"id": "a", "speech": "s1", "year": 1990, "text": "One."},
        {"id": "b", "speech": "s1", "year": 1991, "text": "Two."},
    ]
    path = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    settings = corpus_settings(
        id_column="id", group_column="speech", metadata_columns=["year"], shards=1
    )
    kept, _, _ = ingest_records([path], 0, settings)
    assert kept.doc_id.tolist() == ["a", "b"]
    assert kept.group_id.tolist() == ["s1", "s1"]
    assert kept.year.tolist() == [1990, 1991]
    assert kept.columns.tolist() == [
        "doc_id", "group_id", "text", "year", "source", "source_record", "chunk"
    ]  # fmt: skip


def test_duplicate_id_keeps_the_first_and_rejects_the_second(tmp_path):
    rows = [{"id": "a", "text": "One."}, {"id": "a", "text": "Again."}]
    path = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    kept, rejected, _ = ingest_records([path], 0, corpus_settings(id_column="id", shards=1))
    assert kept.text.tolist() == ["One."]
    assert rejected.reason.tolist() == ["duplicate_id"]
    assert rejected.doc_id.tolist() == ["a"]


def test_duplicate_id_is_found_across_strided_shards(tmp_path):
    rows = [{"id": "a", "text": "One."}, {"id": "a", "text": "Again."}]
    path = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    kept, rejected, _ = ingest_all([path], corpus_settings(id_column="id", shards=2))
    assert kept.shard.tolist() == [0]
    assert rejected[["shard", "reason"]].values.tolist() == [[1, "duplicate_id"]]


def test_blank_id_is_rejected_as_empty_id(tmp_path):
    path = write(tmp_path / "a.csv", "id,text\n,One.\nb,Two.\n")
    kept, rejected, _ = ingest_records([path], 0, corpus_settings(id_column="id", shards=1))
    assert kept.doc_id.tolist() == ["b"]
    assert rejected.reason.tolist() == ["empty_id"]


def test_column_missing_from_a_csv_header_rejects_every_record_naming_it(tmp_path):
    path = write(tmp_path / "a.csv", "text\nOne.\nTwo.\n")
    settings = corpus_settings(metadata_columns=["party"], shards=1)
    kept, rejected, raw = ingest_records([path], 0, settings)
    assert kept.empty and raw == 2
    assert rejected.reason.tolist() == ["missing_column"] * 2
    assert rejected.detail[0] == (
        f"{Path(path).as_posix()} line 2: no column 'party' (it has: text)"
    )


def test_metadata_column_named_like_an_output_column_is_a_config_error(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"text": "x"}\n')
    with pytest.raises(ValueError, match="corpus.metadata_columns"):
        ingest_records([path], 0, corpus_settings(metadata_columns=["source"]))


# --- sharding ---------------------------------------------------------------------------------


def test_file_shard_is_stable_and_in_range():
    paths = [f"data/file_{i}.csv" for i in range(50)]
    first = [file_shard(p, 4) for p in paths]
    assert first == [file_shard(p, 4) for p in paths]
    assert set(first) == {0, 1, 2, 3}
    assert file_shard("data/x.csv", 4) == file_shard(Path("data/x.csv"), 4)


def test_fewer_files_than_shards_strides_records():
    assert shards_by_file(3, 2)
    assert not shards_by_file(1, 2)


def test_a_shard_given_only_its_own_files_ingests_the_same_records():
    settings = corpus_settings(shards=2)
    for shard in (0, 1):
        own = shard_files(MESSY_FILES, shard, 2)
        assert own == [f for f in MESSY_FILES if file_shard(f, 2) == shard]
        whole, _, raw_whole = ingest_records(MESSY_FILES, shard, settings)
        alone, _, raw_alone = ingest_records(own, shard, settings, whole_files=True)
        assert alone.equals(whole) and raw_alone == raw_whole


def test_strided_shards_read_every_file():
    assert shard_files(["a.txt"], 1, 2) == ["a.txt"]


def test_files_by_shard_gives_each_shard_the_files_shard_files_gives_it():
    files = [f"data/part{i}.csv" for i in range(40)]
    by_shard = files_by_shard(files, 7)
    assert sorted(by_shard) == list(range(7))
    for shard in range(7):
        assert by_shard[shard] == [f for f in files if file_shard(f, 7) == shard]
    assert sorted(f for own in by_shard.values() for f in own) == sorted(files)
    assert files_by_shard(["a.txt"], 2) == {0: ["a.txt"], 1: ["a.txt"]}  # strided: all files


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_every_record_lands_in_exactly_one_shard(tmp_path, shards):
    files = [
        write(tmp_path / f"f{i}.jsonl", "".join(f'{{"text": "d{i}-{j}"}}\n' for j in range(5)))
        for i in range(4)
    ]
    kept, rejected, raws = ingest_all(files, corpus_settings(shards=shards))
    assert rejected.empty
    assert sorted(kept.text) == sorted(f"d{i}-{j}" for i in range(4) for j in range(5))
    assert sum(raws) == 20


# --- hostile input ----------------------------------------------------------------------------


def test_csv_unclosed_quote_rejects_its_line_and_keeps_the_rows_after_it(tmp_path):
    path = write(tmp_path / "a.csv", 'text,year\none,1\n"two,2\nthree,3\nfour,4\nfive,5\n')
    kept, rejected, raws = ingest_all([path], corpus_settings(shards=1))
    assert raws == [5]
    assert kept.text.tolist() == ["one", "three", "four", "five"]
    assert rejected.reason.tolist() == ["malformed_row"]
    assert rejected.detail[0].startswith(f"{path} line 3: a quoted field opened here is still open")


def test_csv_record_over_max_field_lines_is_taken_for_an_unclosed_quote(tmp_path):
    # The stray quote on line 2 is closed by the one on line 5: rows 3 and 4 would be swallowed.
    path = write(tmp_path / "a.csv", 'text\nok\n"bad\nthree\nfour"\nsix\n')
    records = list(read_records(path, corpus_settings(max_field_lines=2)))
    assert records[1].problem[1].startswith(f"{path} line 3: a quoted field opened here runs over")
    assert [r.fields["text"] for r in records if r.fields] == ["ok", "three", 'four"', "six"]
    # With a limit above the span, a quoted cell over several lines is one record, as before.
    records = list(read_records(path, corpus_settings(max_field_lines=3)))
    assert [r.fields["text"] for r in records] == ["ok", "bad\nthree\nfour", "six"]


def test_csv_stray_quote_closed_inside_a_later_row_rejects_its_line_not_merges(tmp_path):
    # Line 3's quote is closed by the one in line 4, followed by more text: a merged record in
    # lenient parsing (5 rows written, 4 counted). Every written row must be accounted for.
    path = write(tmp_path / "a.csv", 'id,text\n1,one\n2,"two\n3,"three\n4,four\n5,five\n')
    kept, rejected, raws = ingest_all([path], corpus_settings(shards=1, id_column="id"))
    assert raws == [5]
    assert kept.text.tolist() == ["one", "four", "five"]
    assert rejected.reason.tolist() == ["malformed_row", "malformed_row"]
    assert rejected.detail[0].startswith(f"{path} line 3: a quoted field opened here")
    assert "closes on line 4 with text after it" in rejected.detail[0]
    assert rejected.detail[1].startswith(f"{path} line 4: a quoted field opened here is still open")


@pytest.mark.parametrize("blank", ["\u3164", "\u2800\u2800", "\u115f \u1160", "\uffa0"])
def test_text_of_only_blank_looking_letters_is_empty_text(tmp_path, blank):
    path = write(tmp_path / "a.jsonl", f'{{"text": "fine"}}\n{{"text": "{blank}"}}\n')
    kept, rejected, _ = ingest_all([path], corpus_settings(shards=1))
    assert kept.text.tolist() == ["fine"]
    assert rejected.reason.tolist() == ["empty_text"]


@pytest.mark.parametrize("name", ["a.csv", "a.tsv", "a.jsonl"])
def test_a_zero_byte_table_file_is_one_empty_text_reject_naming_it(tmp_path, name):
    path = write(tmp_path / name, "")
    kept, rejected, raws = ingest_all([path], corpus_settings(shards=1))
    assert raws == [1] and kept.empty
    assert rejected.reason.tolist() == ["empty_text"]
    assert rejected.detail.tolist() == [f"{path} line 1: the file is empty (no header, no record)"]


def test_json_nan_and_infinity_are_rejected_as_not_json(tmp_path):
    lines = ['{"text": "a", "year": NaN}', '{"text": "b", "year": Infinity}', '{"text": "c"}']
    path = write(tmp_path / "a.jsonl", "\n".join(lines) + "\n")
    kept, rejected, _ = ingest_all([path], corpus_settings(shards=1))
    assert kept.text.tolist() == ["c"]
    assert rejected.reason.tolist() == ["malformed_row", "malformed_row"]
    assert rejected.detail[0] == (
        f"{path} line 1: NaN is not a JSON value (write null for a missing value)"
    )
    assert rejected.detail[1].startswith(f"{path} line 2: Infinity is not a JSON value")


def test_an_infinite_metadata_value_in_parquet_is_rejected(tmp_path):
    path = tmp_path / "a.parquet"
    pd.DataFrame({"text": ["a", "b"], "score": [float("inf"), 1.5]}).to_parquet(path)
    settings = corpus_settings(shards=1, metadata_columns=["score"])
    kept, rejected, _ = ingest_all([str(path)], settings)
    assert kept.text.tolist() == ["b"]
    assert rejected.detail.tolist() == [f"{path} row 0: 'score' is inf, not a finite number"]


def test_list_or_mapping_ids_and_metadata_are_rejected_naming_the_column(tmp_path):
    lines = [
        '{"id": ["x"], "text": "a", "party": "W"}',
        '{"id": "y", "text": "b", "party": {"name": "W"}}',
        '{"id": "z", "text": "c", "party": "W"}',
    ]
    path = write(tmp_path / "a.jsonl", "\n".join(lines) + "\n")
    settings = corpus_settings(shards=1, id_column="id", metadata_columns=["party"])
    kept, rejected, _ = ingest_all([path], settings)
    assert kept.doc_id.tolist() == ["z"]
    assert rejected.detail.tolist() == [
        f"{path} line 1: 'id' is a list, not a string, number or boolean",
        f"{path} line 2: 'party' is a dict, not a string, number or boolean",
    ]


def test_deeply_nested_json_line_is_a_reject_not_a_crash(tmp_path):
    deep = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = write(tmp_path / "a.jsonl", '{"text": "fine"}\n' + deep + "\n")
    kept, rejected, raws = ingest_all([path], corpus_settings(shards=1))
    assert raws == [2] and kept.text.tolist() == ["fine"]
    assert rejected.detail.tolist() == [f"{path} line 2: JSON nested too deeply to read"]


def test_an_exception_while_preparing_one_record_rejects_that_record(tmp_path, monkeypatch):
    import locallm.data.records as records

    def fragile(text, fix_encoding):
        if "poison" in text:
            raise UnicodeError("cannot repair this")
        return text

    monkeypatch.setattr(records, "normalise", fragile)
    path = write(tmp_path / "a.jsonl", '{"text": "fine"}\n{"text": "poison"}\n')
    kept, rejected, raws = ingest_all([path], corpus_settings(shards=1))
    assert kept.text.tolist() == ["fine"]
    assert rejected.reason.tolist() == ["malformed_row"]
    assert rejected.detail[0] == f"{path} line 2: UnicodeError: cannot repair this"


def test_zero_width_only_text_is_rejected_as_empty(tmp_path):
    path = write(
        tmp_path / "a.jsonl", '{"text": "\u200b\u200d\ufeff \u2060"}\n{"text": "a\u200b"}\n'
    )
    kept, rejected, _ = ingest_all([path], corpus_settings(shards=1))
    assert kept.text.tolist() == ["a\u200b"]
    assert rejected.reason.tolist() == ["empty_text"]
    assert "no visible text" in rejected.detail[0]


def unreadable_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Files ingest cannot read at all, each with the words its error must contain."""
    import os

    (tmp_path / "folder.csv").mkdir()
    os.mkfifo(tmp_path / "pipe.jsonl")
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    return {
        "folder": (tmp_path / "folder.csv", "is a folder, not a file"),
        "fifo": (tmp_path / "pipe.jsonl", "is not a regular file"),
        "empty parquet": (tmp_path / "empty.parquet", "is empty (0 bytes)"),
        "broken parquet": (tmp_path / "broken.parquet", "is not a Parquet file"),
    }


@pytest.mark.parametrize("kind", ["folder", "fifo", "empty parquet", "broken parquet"])
def test_a_file_that_cannot_be_read_is_one_error_naming_it(tmp_path, kind):
    import signal

    path, words = unreadable_files(tmp_path)[kind]
    signal.alarm(20)  # a FIFO must not make ingest wait for a writer
    try:
        with pytest.raises(ValueError) as error:
            ingest_records([str(path)], 0, corpus_settings(shards=1))
    finally:
        signal.alarm(0)
    assert str(error.value).startswith(f"corpus file {path}") and words in str(error.value)


def test_unreadable_files_are_found_while_the_dag_is_built(tmp_path):
    files = unreadable_files(tmp_path)
    for path, words in files.values():
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
            corpus_paths([str(path)])


def test_one_of_several_globs_matching_nothing_is_an_error_naming_it(tmp_path):
    write(tmp_path / "a.csv", "text\nx\n")
    with pytest.raises(ValueError, match=r"corpus.paths: '.*/dta/\*\.csv' matches no file"):
        corpus_paths([str(tmp_path / "*.csv"), str(tmp_path / "dta" / "*.csv")])
    assert corpus_paths([str(tmp_path / "*.csv")]) == [str(tmp_path / "a.csv")]


DERIVED = {
    "era": {
        "from": "year",
        "bins": [1790, 1900, 1946, 2030],
        "labels": ["early", "middle", "modern"],
    },
    "side": {"from": "party", "map": {"Democratic": "D", "Republican": "R"}},
}


def test_derived_columns_bin_a_number_and_map_values(tmp_path):
    path = write(
        tmp_path / "a.csv",
        "text,year,party\na,1790,Democratic\nb,1945.5,Republican\nc,2001,Democratic\n",
    )
    kept, rejected, _ = ingest_all([path], corpus_settings(shards=1, derived_columns=DERIVED))
    assert rejected.empty
    assert kept.era.tolist() == ["early", "middle", "modern"]
    assert kept.side.tolist() == ["D", "R", "D"]
    assert "year" not in kept.columns  # the source is read, not carried unless it is metadata


def test_a_record_whose_derived_value_cannot_be_computed_is_rejected_with_the_value(tmp_path):
    path = write(
        tmp_path / "a.csv",
        "text,year,party\na,1789,Democratic\nb,n/a,Republican\nc,1990,Whig\nd,1990\n",
    )
    settings = corpus_settings(shards=1, derived_columns=DERIVED)
    kept, rejected, raws = ingest_all([path], settings)
    assert raws == [4] and kept.empty
    assert rejected.reason.tolist() == ["underivable"] * 3 + ["malformed_row"]
    assert rejected.detail.tolist()[:3] == [
        f"{path} line 2: year '1789' is outside corpus.derived_columns.era.bins [1790, 2030)",
        f"{path} line 3: year 'n/a' is not a number (corpus.derived_columns.era.bins)",
        f"{path} line 4: party 'Whig' is not in corpus.derived_columns.side.map",
    ]


@pytest.mark.parametrize("year", ["1_850", "1.85e3", "inf", "nan"])
def test_a_derived_bin_source_not_written_as_a_plain_number_is_underivable(tmp_path, year):
    path = write(tmp_path / "a.csv", f"text,year,party\na,{year},Whig\nb,1850,Whig\n")
    settings = corpus_settings(shards=1, derived_columns={"era": DERIVED["era"]})
    kept, rejected, _ = ingest_all([path], settings)
    assert kept.text.tolist() == ["b"]
    assert rejected.reason.tolist() == ["underivable"]
    assert f"year '{year}' is not written as a plain decimal number" in rejected.detail[0]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"from": "year", "bins": [2, 1], "labels": ["x"]}, "edges must increase"),
        ({"from": "year", "bins": [1, 2, 3], "labels": ["x"]}, "2 labels needed"),
        ({"from": "year"}, "either `bins`"),
        ({"from": "year", "map": {"a": "b"}, "labels": ["x"]}, "only used with `bins`"),
    ],
)
def test_a_derived_column_spec_that_cannot_work_is_a_config_error(tmp_path, spec, words):
    path = write(tmp_path / "a.csv", "text,year\na,1\n")
    with pytest.raises(ValueError, match=words):
        ingest_records([path], 0, corpus_settings(shards=1, derived_columns={"era": spec}))


def test_ingest_report_when_nothing_is_kept_names_the_top_reject_reasons(tmp_path):
    files = [write(tmp_path / f"{n}.csv", "text,year\na,1\nb,2\n") for n in "ab"]
    files.append(write(tmp_path / "c.jsonl", "[1]\n"))
    settings = corpus_settings(shards=1, metadata_columns=["era"])
    paths = {
        k: [str(tmp_path / f"{k}.{s}")]
        for k, s in [("kept", "pq"), ("rejects", "pq"), ("counts", "json")]
    }
    ingest_shard(files, "000", settings, *(paths[k][0] for k in paths))
    with pytest.raises(ValueError) as error:
        ingest_report(**paths, shards=["000"])
    message = str(error.value)
    assert "no record was kept; of 5 rejected, the top reasons:" in message
    assert "missing_column: 4 record(s), e.g. " in message and "no column 'era'" in message
    assert "malformed_row: 1 record(s)" in message
    assert message.index("missing_column") < message.index("malformed_row")


# --- the messy corpus -------------------------------------------------------------------------

MESSY_REJECTS = [
    ("empty.txt", 0, "empty_text"),
    ("latin1.txt", 0, "undecodable"),
    ("records.jsonl", 1, "malformed_row"),
    ("records.jsonl", 2, "malformed_row"),
    ("records.jsonl", 3, "missing_column"),
    ("table.csv", 1, "malformed_row"),
    ("table.csv", 2, "empty_text"),
    ("table.parquet", 1, "empty_text"),
]


@pytest.mark.parametrize("shards", [1, 2, 3, 9])
def test_messy_corpus_rejects_with_exact_reasons_and_accounts_for_every_record(shards):
    kept, rejected, raws = ingest_all(MESSY_FILES, corpus_settings(shards=shards))
    names = rejected.source.map(lambda s: Path(s).name)
    found = sorted(zip(names, rejected.source_record, rejected.reason, strict=True))
    assert found == MESSY_REJECTS
    assert kept.source_record.groupby(kept.source).nunique().sum() == 6
    # raw records = kept records + rejected records, per shard and in total
    for shard, raw in enumerate(raws):
        mine = kept[kept.shard == shard]
        assert (
            raw == len(mine.groupby(["source", "source_record"])) + (rejected.shard == shard).sum()
        )
    assert sum(raws) == 14


def test_messy_corpus_repairs_mojibake_and_names_lines():
    kept, rejected, _ = ingest_all(MESSY_FILES, corpus_settings(shards=1))
    assert "Le café est ouvert." in kept.text[kept.source.str.endswith("good.txt")].iloc[0]
    details = rejected.set_index(
        rejected.source.map(lambda s: Path(s).name) + ":" + rejected.reason
    ).detail
    assert details["latin1.txt:undecodable"].endswith("line 1: bytes b'\\xe9' are not valid utf-8")
    assert details["table.csv:malformed_row"].endswith(
        "table.csv line 3: 3 fields, the header has 2"
    )
    assert "records.jsonl line 5: no column 'text'" in details["records.jsonl:missing_column"]


def test_ingest_report_checks_the_identity_over_written_shards(tmp_path):
    settings = corpus_settings(shards=2)
    paths = {"kept": [], "rejects": [], "counts": []}
    for shard in ["000", "001"]:
        for kind, suffix in (("kept", "parquet"), ("rejects", "parquet"), ("counts", "json")):
            paths[kind].append(str(tmp_path / f"{kind}-{shard}.{suffix}"))
        ingest_shard(MESSY_FILES, shard, settings, *(paths[k][-1] for k in paths))
    report = ingest_report(**paths, shards=["000", "001"])
    total = report.set_index("shard").loc["all"]
    assert total.raw_records == 14
    assert total.kept_records == 6
    assert total.rejected == 8
    assert total.rejected_malformed_row == 3
    assert total.rejected_empty_text == 3


def test_ingest_report_fails_when_a_record_is_unaccounted(tmp_path):
    settings = corpus_settings(shards=1)
    kept, rejects, counts = (str(tmp_path / n) for n in ("k.parquet", "r.parquet", "c.json"))
    ingest_shard(MESSY_FILES, "000", settings, kept, rejects, counts)
    # Lose one rejected record: the identity no longer holds.
    lost = pd.read_parquet(rejects).iloc[1:]
    lost.to_parquet(rejects, index=False)
    with pytest.raises(ValueError, match=r"raw records 14 != kept records 6 \+ rejected 7"):
        ingest_report([kept], [rejects], [counts], ["000"])


def test_ingest_report_fails_on_a_record_in_two_shards(tmp_path):
    kept, rejects, counts = (str(tmp_path / n) for n in ("k.parquet", "r.parquet", "c.json"))
    ingest_shard(MESSY_FILES, "000", corpus_settings(shards=1), kept, rejects, counts)
    with pytest.raises(ValueError, match=r"shard 001: 14 record\(s\) also in an earlier shard"):
        ingest_report([kept] * 2, [rejects] * 2, [counts] * 2, ["000", "001"])


def test_ingest_report_fails_on_a_doc_id_in_two_shards(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        shutil.copy(MESSY / "records.jsonl", tmp_path / name / "records.jsonl")
    settings = corpus_settings(shards=1, id_column="author")
    paths = []
    for shard, name in enumerate(("a", "b")):
        out = [str(tmp_path / f"{kind}-{shard}") for kind in ("k", "r", "c")]
        ingest_shard([str(tmp_path / name / "records.jsonl")], "000", settings, *out)
        paths.append(out)
    kept, rejects, counts = (list(p) for p in zip(*paths, strict=True))
    with pytest.raises(ValueError, match="doc_id repeats"):
        ingest_report(kept, rejects, counts, ["000", "001"])


# --- the embedded corpus ----------------------------------------------------------------------


def test_export_sotu_writes_237_addresses_with_stable_ids(tmp_path):
    from locallm.data.sotu import export_sotu

    export_sotu(tmp_path / "sotu.jsonl")
    records = [json.loads(line) for line in (tmp_path / "sotu.jsonl").read_text().splitlines()]
    assert len(records) == 237
    assert all(
        list(r) == ["address_id", "year", "president", "party", "sotu_type", "text"]
        for r in records
    )
    ids = [r["address_id"] for r in records]
    assert ids[:2] == ["1790-washington-1", "1790-washington-2"]
    assert len(set(ids)) == 237


# --- the hostile corpus -----------------------------------------------------------------------


@pytest.mark.parametrize("shards", [1, 4])
def test_hostile_corpus_accounts_for_every_record_with_the_expected_reason(shards):
    expected = pd.read_csv(HOSTILE / "expected.tsv", sep="\t", dtype=str)
    expected = expected[expected.outcome != "no records"]
    kept, rejected, raws = ingest_all(HOSTILE_FILES, corpus_settings(shards=shards))
    outcome = {
        (Path(source).name, str(record)): "kept"
        for source, record in zip(kept.source, kept.source_record, strict=True)
    }
    for row in rejected.itertuples():
        key = (Path(row.source).name, str(row.source_record))
        assert key not in outcome, f"{key} both kept and rejected, or rejected twice"
        outcome[key] = row.reason
    keys = zip(expected.file, expected.record, strict=True)
    assert outcome == dict(zip(keys, expected.outcome, strict=True))
    # raw = kept + rejected, in total and per shard
    assert sum(raws) == len(expected) == 27
    for shard, raw in enumerate(raws):
        mine = kept[kept.shard == shard].groupby(["source", "source_record"]).ngroups
        assert raw == mine + (rejected.shard == shard).sum()
    # every reject names its file and the line (or row) where the record starts
    lines = expected.set_index(["file", "record"]).line
    for row in rejected.itertuples():
        line = lines[(Path(row.source).name, str(row.source_record))]
        where = f"line {line}" if line != "-" else f"row {row.source_record}"
        assert row.detail.startswith(f"{row.source} {where}"), row.detail
