"""Splits: whole groups by a seeded hash, stratification, label filter, leakage, size warnings."""

import logging

import numpy as np
import pandas as pd
import pytest
from locallm.config import with_defaults
from locallm.settings import split_fractions
from locallm.tables import read_table, write_table
from locallm.task.splits import (
    assign_splits,
    filter_task_labels,
    find_leaks,
    groups_straddling,
    size_warnings,
    split_corpus,
    text_facts,
)


def with_text_facts(docs: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([docs, text_facts(docs["text"])], axis=1)


def split_settings(**overrides) -> dict:
    return {**with_defaults({})["split"], **overrides}


def task_settings(**overrides) -> dict:
    return {**with_defaults({})["task"], **overrides}


def corpus(groups: int, docs_per_group: int = 3, seed: int = 0) -> pd.DataFrame:
    """Random groups of documents with a party label shared by each group (60% Democratic)."""
    rng = np.random.default_rng(seed)
    party = np.where(rng.random(groups) < 0.6, "Democratic", "Republican")
    rows = [
        {
            "doc_id": f"g{g}-{d}",
            "group_id": f"g{g}",
            "text": f"text of group {g} document {d} " + "word " * int(rng.integers(1, 20)),
            "party": party[g],
        }
        for g in range(groups)
        for d in range(docs_per_group)
    ]
    return pd.DataFrame(rows)


def test_same_seed_gives_the_same_split_and_another_seed_a_different_one():
    docs = corpus(200)
    first = assign_splits(docs, split_settings(), seed=1)
    assert first.equals(assign_splits(docs, split_settings(), seed=1))
    assert not first.equals(assign_splits(docs, split_settings(), seed=2))


def test_fractions_are_approximately_respected_on_many_groups():
    docs = corpus(5000, docs_per_group=1)
    shares = assign_splits(docs, split_settings(), seed=3).value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.02)
    assert shares["validation"] == pytest.approx(0.1, abs=0.02)
    assert shares["test"] == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("stratify_by", [None, "party"])
def test_a_group_never_straddles_splits(seed, stratify_by):
    rng = np.random.default_rng(seed)
    docs = corpus(100, docs_per_group=1, seed=seed)
    # Random group sizes and shuffled row order, so groups are interleaved.
    docs["group_id"] = [f"g{i}" for i in rng.integers(0, 30, len(docs))]
    docs = docs.sample(frac=1, random_state=seed).reset_index(drop=True)
    docs["split"] = assign_splits(docs, split_settings(stratify_by=stratify_by), seed=seed)
    assert docs["split"].notna().all()
    assert groups_straddling(docs) == 0


def test_groups_straddling_counts_a_planted_straddle():
    docs = pd.DataFrame({"group_id": ["a", "a", "b"], "split": ["train", "test", "test"]})
    assert groups_straddling(docs) == 1


def test_stratification_keeps_label_shares_in_every_split():
    # Cutting each stratum by the fractions is off by at most one group per stratum and split.
    docs = corpus(1000, docs_per_group=1, seed=4)
    docs["split"] = assign_splits(docs, split_settings(stratify_by="party"), seed=4)
    overall = (docs.party == "Republican").mean()
    for split in ["train", "validation", "test"]:
        share = (docs.party[docs.split == split] == "Republican").mean()
        assert share == pytest.approx(overall, abs=0.02), split


def test_fractions_that_do_not_sum_to_one_name_the_keys():
    with pytest.raises(
        ValueError, match="split.train 0.8 \\+ split.validation 0.1 \\+ split.test 0.2"
    ):
        split_fractions(split_settings(test=0.2))


def test_stratify_by_a_missing_column_names_the_key():
    with pytest.raises(KeyError, match="split.stratify_by"):
        assign_splits(corpus(5), split_settings(stratify_by="decade"), seed=1)


def test_label_filter_rejects_other_labels_with_reason_and_value():
    docs = corpus(4, docs_per_group=1)
    docs["party"] = ["Democratic", "Whig", "Republican", None]
    kept, rejected = filter_task_labels(
        docs, task_settings(label_column="party", labels=["Democratic", "Republican"])
    )
    assert kept.party.tolist() == ["Democratic", "Republican"]
    assert rejected.doc_id.tolist() == ["g1-0", "g3-0"]
    assert rejected.reason.tolist() == ["label.not_in_task_labels"] * 2
    assert rejected.detail.tolist() == ["Whig", "(missing)"]


def test_label_normalize_matches_case_and_spaces_and_stores_the_configured_spelling():
    docs = corpus(5, docs_per_group=1)
    docs["stance"] = ["Pro ", "PRO", "con", " Con", "maybe"]
    task = task_settings(label_column="stance", labels=["pro", "Con"], label_normalize=True)
    kept, rejected = filter_task_labels(docs, task)
    assert kept.stance.tolist() == ["pro", "pro", "Con", "Con"]
    assert rejected.detail.tolist() == ["maybe"]


def test_rejected_labels_are_logged_by_frequency_beside_the_allowed_ones(caplog):
    docs = corpus(6, docs_per_group=1)
    docs["stance"] = ["Pro ", "PRO", "PRO", "pro", None, "x"]
    with caplog.at_level(logging.WARNING):
        kept, rejected = filter_task_labels(
            docs, task_settings(label_column="stance", labels=["pro"])
        )
    assert kept.stance.tolist() == ["pro"]
    message = caplog.text
    assert "5 row(s) rejected: their stance is not one of task.labels ['pro']" in message
    assert "most frequent rejected values: 'PRO' (2), " in message
    assert "task.label_normalize ignores case and spaces" in message


def test_label_filter_without_label_column_names_the_keys():
    with pytest.raises(ValueError, match="task.label_column"):
        filter_task_labels(corpus(2), task_settings(labels=["Democratic"]))


def test_planted_near_duplicate_across_train_and_test_is_found():
    docs = pd.DataFrame(
        {
            "doc_id": ["tr1", "tr2", "te1", "te2"],
            "group_id": ["A", "A", "B", "C"],
            "text": ["one text", "two text", "three text", "four text"],
            "split": ["train", "train", "test", "test"],
        }
    )
    pairs = pd.DataFrame({"doc_id": ["te1"], "duplicate_of": ["tr2"]})
    leaks = find_leaks(with_text_facts(docs), pairs, "test")
    assert leaks.doc_id.tolist() == ["te1"]
    assert leaks.train_copy.tolist() == ["tr2"]


def test_exact_copy_across_train_and_test_is_found_without_dedup_pairs():
    docs = pd.DataFrame(
        {
            "doc_id": ["tr1", "te1"],
            "group_id": ["A", "B"],
            "text": ["The same  words", "the same words"],
            "split": ["train", "test"],
        }
    )
    empty = NO_PAIRS
    assert find_leaks(with_text_facts(docs), empty, "test").doc_id.tolist() == ["te1"]


def test_size_warnings_fire_on_tiny_data():
    docs = corpus(3, docs_per_group=1)
    docs["split"] = ["train", "validation", "test"]
    found = size_warnings(
        with_text_facts(docs), split_settings(), "party", ["Democratic", "Republican"]
    )
    keys = {(split, key) for split, key, _ in found}
    assert ("train", "min_train_mb") in keys
    assert ("test", "min_label_examples:Republican") in keys
    assert len(found) == 1 + 3 * 2  # both labels under 20 examples in all three splits


def run_split(tmp_path, docs, pairs, **overrides):
    write_table(docs.iloc[::2], tmp_path / "000.parquet")
    write_table(docs.iloc[1::2], tmp_path / "001.parquet")
    write_table(pairs, tmp_path / "duplicates.parquet")
    outputs = {s: tmp_path / f"{s}.parquet" for s in ["train", "validation", "test"]}
    split_corpus(
        filtered=[tmp_path / "000.parquet", tmp_path / "001.parquet"],
        duplicates=tmp_path / "duplicates.parquet",
        settings=split_settings(stratify_by="party", **overrides),
        task=task_settings(label_column="party", labels=["Democratic", "Republican"]),
        seed=1,
        outputs=outputs,
        rejects=tmp_path / "rejects.parquet",
        report=tmp_path / "report.tsv",
    )
    splits = {s: read_table(p) for s, p in outputs.items()}
    report = pd.read_csv(tmp_path / "report.tsv", sep="\t")
    return splits, read_table(tmp_path / "rejects.parquet"), report


def planted_leak(tmp_path):
    """A corpus split once to pick a train and a test doc, and a dedup pair planted between them."""
    docs = corpus(60)
    splits, _, _ = run_split(tmp_path, docs, NO_PAIRS)
    train_doc, test_doc = splits["train"].doc_id[0], splits["test"].doc_id[0]
    pairs = pd.DataFrame(
        {"doc_id": [test_doc], "duplicate_of": [train_doc], "estimated_jaccard": [0.9]}
    )
    return docs, pairs, test_doc


def test_split_corpus_removes_the_test_copy_of_a_planted_near_duplicate(tmp_path, caplog):
    docs, pairs, test_doc = planted_leak(tmp_path)
    with caplog.at_level(logging.WARNING):
        splits, rejects, report = run_split(tmp_path, docs, pairs)
    assert test_doc not in set(splits["test"].doc_id)
    leaked = rejects[rejects.doc_id == test_doc]
    assert leaked.reason.tolist() == ["leakage.near_duplicate_of_train"]
    row = report.set_index(["section", "split", "key"])["value"]
    assert row[("leakage", "test", "docs_with_duplicate_in_train")] == "1"
    assert row[("leakage", "test", "docs_removed")] == "1"
    assert row[("leakage", "all", "groups_straddling_splits")] == "0"
    assert "training split holds" in caplog.text  # the tiny-data warning is logged


def test_split_corpus_only_reports_leaks_when_told(tmp_path):
    docs, pairs, test_doc = planted_leak(tmp_path)
    splits, rejects, _ = run_split(tmp_path, docs, pairs, leakage="report")
    assert test_doc in set(splits["test"].doc_id)
    assert "leakage.near_duplicate_of_train" not in set(rejects.reason)


def test_split_corpus_accounts_for_every_row(tmp_path):
    docs = corpus(40)
    docs.loc[docs.group_id == "g0", "party"] = "Whig"
    splits, rejects, report = run_split(
        tmp_path, docs, pd.DataFrame(columns=["doc_id", "duplicate_of"])
    )
    kept = sum(len(part) for part in splits.values())
    assert kept + len(rejects) == len(docs)
    assert set(rejects.reason) == {"label.not_in_task_labels"}
    assert all((part.split == name).all() for name, part in splits.items())
    sizes = report[(report.section == "size") & (report.key == "documents")]
    assert sizes.value.astype(int).sum() == kept
    groups = report[report.section == "label_groups"].value.astype(int).sum()
    assert groups == docs[docs.party != "Whig"].group_id.nunique()


NO_PAIRS = pd.DataFrame({"doc_id": [], "duplicate_of": []})


def test_a_corpus_too_small_for_a_validation_split_is_an_error_naming_it(tmp_path):
    docs = corpus(8, docs_per_group=1)
    docs["party"] = ["Democratic", "Republican"] * 4
    # 4 groups per label: their hash ranks sit at 1/8, 3/8, 5/8, 7/8, none in [0.75, 0.8).
    with pytest.raises(
        ValueError,
        match=r"the validation split\(s\) got no document \(split.validation 0.05; 8 group",
    ):
        run_split(tmp_path, docs, NO_PAIRS, train=0.75, validation=0.05, test=0.2)


def test_a_split_set_to_zero_may_be_empty(tmp_path):
    docs = corpus(6, docs_per_group=1)
    splits, _, _ = run_split(
        tmp_path,
        docs,
        NO_PAIRS,
        train=0.5,
        validation=0,
        test=0.5,
    )
    assert splits["validation"].empty and len(splits["train"]) + len(splits["test"]) == 6


def test_split_corpus_stores_a_metadata_column_typed_differently_per_shard_as_text(tmp_path):
    # Shard 000 read `year` from JSONL (numbers), shard 001 from CSV (text): Parquet cannot hold a
    # column of both, which used to stop the split with an ArrowTypeError.
    docs = corpus(40)
    first, second = docs.iloc[::2].copy(), docs.iloc[1::2].copy()
    first["year"] = 1990
    second["year"] = "1991"
    write_table(first, tmp_path / "000.parquet")
    write_table(second, tmp_path / "001.parquet")
    write_table(NO_PAIRS, tmp_path / "duplicates.parquet")
    outputs = {s: tmp_path / f"{s}.parquet" for s in ["train", "validation", "test"]}
    split_corpus(
        filtered=[tmp_path / "000.parquet", tmp_path / "001.parquet"],
        duplicates=tmp_path / "duplicates.parquet",
        settings=split_settings(stratify_by="party"),
        task=task_settings(label_column="party", labels=["Democratic", "Republican"]),
        seed=1,
        outputs=outputs,
        rejects=tmp_path / "rejects.parquet",
        report=tmp_path / "report.tsv",
    )
    years = pd.concat([read_table(p) for p in outputs.values()]).year
    assert sorted(set(years)) == ["1990", "1991"]


def test_split_with_no_filtered_document_names_the_filter_not_the_fractions(tmp_path):
    with pytest.raises(ValueError, match="no document to split: the filter rule kept none"):
        run_split(tmp_path, corpus(4).iloc[:0], NO_PAIRS)


def test_split_where_every_label_is_rejected_names_task_labels(tmp_path):
    docs = corpus(10)
    docs["party"] = "Whig"
    with pytest.raises(ValueError, match=r"all 30 have a party that is not one of task\.labels"):
        run_split(tmp_path, docs, NO_PAIRS)


def test_a_cluster_cap_of_zero_is_refused_by_the_schema():
    with pytest.raises(ValueError, match=r"config key filter\.cluster_cap: 0 is less than"):
        with_defaults({"filter": {"cluster_cap": 0}})


def test_split_files_are_byte_identical_to_writing_the_whole_corpus_split_in_memory(tmp_path):
    # Texts of about 2 KB make the train split span several Parquet data pages.
    docs = corpus(400, docs_per_group=3)
    docs["text"] = docs["text"] + docs["doc_id"].map(lambda d: f" {d} filler" * 200)
    docs.loc[docs.group_id == "g1", "party"] = "Whig"
    splits, _, _ = run_split(tmp_path, docs, NO_PAIRS)
    # The reference: all shards in one frame, as the split job read them before issue 23.
    whole = pd.concat(
        [read_table(tmp_path / "000.parquet"), read_table(tmp_path / "001.parquet")],
        ignore_index=True,
    )
    whole, _ = filter_task_labels(whole, task_settings(label_column="party", labels=LABELS))
    whole = whole.reset_index(drop=True)
    whole["split"] = assign_splits(whole, split_settings(stratify_by="party"), seed=1)
    for split, part in splits.items():
        expected = tmp_path / f"expected-{split}.parquet"
        write_table(whole[whole["split"] == split].reset_index(drop=True), expected)
        assert len(part) > 50
        assert (tmp_path / f"{split}.parquet").read_bytes() == expected.read_bytes()


LABELS = ["Democratic", "Republican"]
