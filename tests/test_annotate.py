"""Annotation without a model: the stage choice and its refusal, the input with hostile user files,
the accounting, the documents table, and the config checks."""

import json

import pandas as pd
import pytest
from locallm.annotate.checks import annotate_problems
from locallm.annotate.choice import NothingGoodEnough, choose_stage
from locallm.annotate.outputs import documents_table, passages_table
from locallm.annotate.population import annotation_input, document_ids
from locallm.config import with_defaults
from locallm.tables import write_table

BAR = {"metric": "macro_f1", "threshold": 0.7}


def metrics(rows):
    """metrics.tsv rows (variant, stage, ci_low, value, good_enough) as evaluate writes them."""
    table = pd.DataFrame(
        [
            {
                "variant": v,
                "stage": s,
                "metric": "macro_f1",
                "value": value,
                "ci_low": low,
                "ci_high": value + 0.05,
                "threshold": 0.7,
                "good_enough": low >= 0.7,
            }
            for v, s, value, low in rows
        ]  # fmt: skip
    )
    baseline = {"variant": "baseline", "stage": "majority", "metric": "macro_f1", "value": 0.9,
                "ci_low": 0.85, "ci_high": 0.95, "good_enough": None}  # fmt: skip
    return pd.concat([table, pd.DataFrame([baseline])], ignore_index=True)


def test_decision_takes_the_cheapest_stage_that_clears_the_bar():
    table = metrics(
        [
            ("full", "base", 0.5, 0.4),
            ("full", "sft", 0.8, 0.72),
            ("full", "dpo", 0.9, 0.85),
            ("lora", "sft", 0.85, 0.75),
        ]  # fmt: skip
    )
    choice = choose_stage(table, "decision", BAR)
    # sft is cheaper than dpo; of the two variants at sft, lora has the higher lower bound.
    assert (choice["variant"], choice["stage"]) == ("lora", "sft")
    assert choice["good_enough"] is True and choice["ci_low"] == pytest.approx(0.75)
    assert choice["chosen_by"].startswith("decision")


def test_decision_refuses_when_nothing_is_good_enough_and_names_the_best():
    table = metrics([("full", "base", 0.5, 0.4), ("full", "sft", 0.66, 0.61)])
    with pytest.raises(NothingGoodEnough) as error:
        choose_stage(table, "decision", BAR)
    message = str(error.value)
    assert "full/sft" in message and "0.610 to 0.710" in message
    assert "annotate.use: {variant: NAME, stage: STAGE}" in message


def test_decision_refuses_without_a_threshold():
    table = metrics([("full", "sft", 0.9, 0.85)])
    with pytest.raises(NothingGoodEnough, match="threshold is null"):
        choose_stage(table, "decision", {"metric": "macro_f1", "threshold": None})


def test_a_named_stage_that_missed_the_bar_is_marked(caplog):
    table = metrics([("full", "base", 0.5, 0.4)])
    choice = choose_stage(table, {"variant": "full", "stage": "base"}, BAR)
    assert choice["good_enough"] is False and choice["chosen_by"] == "named in annotate.use"
    assert "missed the pre-registered bar" in caplog.text
    inputs = pd.DataFrame({"doc_id": ["a"], "document_id": ["a"], "group_id": ["g"],
                           "text": ["t"], "origin": ["corpus"], "split": ["test"]})  # fmt: skip
    annotated = pd.DataFrame({"doc_id": ["a"], "predicted_label": ["x"]})
    assert passages_table(inputs, annotated, choice)["stage_good_enough"].tolist() == [False]


def test_passages_table_refuses_a_lost_or_repeated_row():
    inputs = pd.DataFrame({"doc_id": ["a", "b"], "text": ["1", "2"]})
    choice = {"chosen_by": "x", "good_enough": None}
    with pytest.raises(ValueError, match="1 input row\\(s\\) unannotated"):
        passages_table(inputs, pd.DataFrame({"doc_id": ["a"], "predicted_label": ["x"]}), choice)
    with pytest.raises(ValueError, match="1 repeated"):
        passages_table(
            inputs, pd.DataFrame({"doc_id": ["a", "b", "b"], "predicted_label": "x"}), choice
        )


def test_documents_table_gives_shares_majority_and_ties():
    passages = pd.DataFrame(
        {
            "document_id": ["d1", "d1", "d1", "d2", "d2"],
            "group_id": ["g1"] * 3 + ["g2"] * 2,
            "predicted_label": ["R", "R", "D", "D", "R"],
        }
    )
    documents = documents_table(passages, ["D", "R"]).set_index("document_id")
    assert documents.loc["d1", "share_R"] == pytest.approx(2 / 3)
    assert documents.loc["d1", "majority_label"] == "R"
    assert documents.loc["d2", "majority_label"] == "tie"
    assert documents["n_passages"].tolist() == [3, 2]


def test_document_ids_strip_the_chunk_suffix_only():
    table = pd.DataFrame({"doc_id": ["a#0", "a#1", "b#x#2", "c"], "chunk": [0, 1, 2, 0]})
    assert document_ids(table).tolist() == ["a", "a", "b#x", "c"]


CORPUS_SETTINGS = with_defaults(
    {"corpus": {"source": "files", "paths": ["x"], "id_column": "id", "metadata_columns": ["year"]}}
)["corpus"]


@pytest.fixture
def corpus_tables(tmp_path):
    filtered = pd.DataFrame(
        {
            "doc_id": ["c1#0", "c1#1", "c2#0", "c3#0"],
            "group_id": ["c1", "c1", "c2", "c3"],
            "text": ["one", "two", "three", "four"],
            "year": ["1990", "1990", "2000", "2010"],
            "source": "corpus.csv",
            "source_record": [0, 0, 1, 2],
            "chunk": [0, 1, 0, 0],
        }
    )
    write_table(filtered, tmp_path / "filtered.parquet")
    splits = {}
    for name, ids in {"train": ["c1#0", "c1#1"], "validation": [], "test": ["c2#0"]}.items():
        splits[name] = tmp_path / f"{name}.parquet"
        write_table(pd.DataFrame({"doc_id": pd.Series(ids, dtype=str)}), splits[name])
    return [tmp_path / "filtered.parquet"], splits


def run_input(tmp_path, corpus_tables, inputs, sample_groups=None):
    filtered, splits = corpus_tables
    settings = {"input": inputs, "sample_groups": sample_groups}
    out = {k: tmp_path / f"{k}.out" for k in ("output", "rejects", "counts")}
    annotation_input(filtered=filtered, splits=splits, settings=settings,
                     corpus_settings=CORPUS_SETTINGS, seed=3, **out)  # fmt: skip
    return (
        pd.read_parquet(out["output"]),
        pd.read_parquet(out["rejects"]),
        pd.read_csv(out["counts"], sep="\t").set_index("origin"),
    )


def test_corpus_passages_carry_their_split_and_document(tmp_path, corpus_tables):
    table, rejects, counts = run_input(tmp_path, corpus_tables, ["corpus"])
    assert table["split"].tolist() == ["train", "train", "test", "none"]
    assert table["document_id"].tolist() == ["c1", "c1", "c2", "c3"]
    assert table["sampled"].all() and rejects.empty
    assert counts.loc["corpus", "passages_annotated"] == 4


def test_user_files_with_hostile_rows_are_rejected_with_reasons_and_counted(
    tmp_path, corpus_tables
):
    hostile = tmp_path / "mine.csv"
    hostile.write_bytes(
        b"id,text,year\n"
        b"u1,A fine passage about taxes.,2001\n"
        b"u1,The same id again.,2002\n"  # duplicate id
        b",No id at all.,2003\n"  # empty id
        b"u3,,2004\n"  # empty text
        b"c2,Clashes with a corpus id.,2005\n"  # id already a corpus passage
        b"u5,Bad bytes \xff\xfe here.,2006\n"  # not utf-8
        b"u6,No year column value\n"  # missing field
    )
    table, rejects, counts = run_input(tmp_path, corpus_tables, ["corpus", str(hostile)])
    users = table[table["origin"] == "file"]
    assert users["doc_id"].tolist() == ["u1"]
    assert users["split"].tolist() == ["none"] and users["year"].tolist() == ["2001"]
    reasons = rejects.set_index("source_record")["reason"].to_dict()
    assert reasons[1] == "duplicate_id" and reasons[4] == "duplicate_id"
    assert {reasons[2], reasons[3]} == {"empty_id", "empty_text"}
    assert len(rejects) == 6 and rejects["detail"].str.len().gt(0).all()
    # Every record of the user's file is accounted for: read = passages + rejected.
    assert counts.loc["file", "records_read"] == 7
    assert counts.loc["file", "records_rejected"] == 6
    assert counts.loc["file", "passages_annotated"] == 1


def test_a_sample_of_groups_keeps_every_test_passage(tmp_path, corpus_tables):
    table, _, counts = run_input(tmp_path, corpus_tables, ["corpus"], sample_groups=1)
    assert (table.loc[table["split"] == "test", "doc_id"] == "c2#0").any()
    assert table["sampled"].groupby(table["group_id"]).all().sum() == 1
    assert counts.loc["corpus", "passages_in_sample"] == table["sampled"].sum()
    assert counts.loc["corpus", "passages_not_annotated"] == 4 - len(table)


def test_config_checks_name_the_retired_input_and_unknown_choices():
    config = with_defaults(
        {
            "variants": {"full": {"method": "full"}},
            "inference": {"input": "data/table.parquet"},
            "annotate": {"use": {"variant": "nope", "stage": "sft"}, "estimate_by": ["decade"]},
        }
    )
    problems = annotate_problems(config)
    assert any("inference.input" in p and "annotate.input" in p for p in problems)
    assert any("annotate.use.variant 'nope'" in p for p in problems)
    assert any("annotate.estimate_by names 'decade'" in p for p in problems)


def test_write_choice_writes_json(tmp_path):
    from locallm.annotate.choice import write_choice

    path = tmp_path / "metrics.tsv"
    metrics([("full", "sft", 0.8, 0.75)]).to_csv(path, sep="\t", index=False)
    write_choice(metrics=path, use="decision", good_enough=BAR, output=tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["stage"] == "sft"


def test_config_checks_name_metadata_that_clashes_with_annotation_columns():
    config = with_defaults({"corpus": {"metadata_columns": ["year", "split"]}})
    problems = annotate_problems(config)
    assert any("['split'] clash with the columns annotation writes" in p for p in problems)
