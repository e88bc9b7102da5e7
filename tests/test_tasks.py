"""Prompts, targets, SFT tables and preference pairs from a task config."""

import numpy as np
import pandas as pd
import pytest
from locallm.config import with_defaults
from locallm.task.prompts import (
    build_prompt,
    cap_examples,
    check_columns,
    fewshot_examples,
    format_target,
    preferences_from_file,
    preferences_from_labels,
    sft_table,
)

TASK = with_defaults(
    {
        "task": {
            "kind": "classify",
            "system_prompt": "You label speeches.",
            "prompt": "Party of the speaker of {year}?\n\n{text}",
            "label_column": "party",
            "labels": ["Democratic", "Republican", "Whig"],
        }
    }
)["task"]

DOCS = pd.DataFrame(
    {
        "doc_id": ["a", "b", "c"],
        "group_id": ["g1", "g1", "g2"],
        "text": ["We shall overcome.", "Tear down this wall.", "Fifty-four forty."],
        "year": [1965, 1987, 1844],
        "party": ["Democratic", "Republican", "Whig"],
    }
)


def test_build_prompt_fills_the_template_after_the_system_message():
    messages = build_prompt(DOCS.iloc[0], TASK)
    assert messages == [
        {"role": "system", "content": "You label speeches."},
        {"role": "user", "content": "Party of the speaker of 1965?\n\nWe shall overcome."},
    ]


def test_format_target_is_the_gold_label_in_classify_and_the_target_text_in_generate():
    assert format_target(DOCS.iloc[1], TASK) == "Republican"
    generate = {**TASK, "kind": "generate", "target_column": "text"}
    assert format_target(DOCS.iloc[1], generate) == "Tear down this wall."


def test_sft_table_is_conversational_prompt_completion_with_ids():
    table = sft_table(DOCS, TASK)
    assert table.columns.tolist() == ["doc_id", "group_id", "prompt", "completion"]
    assert table.completion[2] == [{"role": "assistant", "content": "Whig"}]
    assert table.prompt[2][-1]["content"].endswith("Fifty-four forty.")


def test_check_columns_names_the_missing_column_and_the_config_key():
    with pytest.raises(ValueError, match=r"'year' \(from task.prompt field \{year\}\)"):
        check_columns(["doc_id", "text", "party"], TASK, "train.parquet")


def test_preferences_from_labels_reject_another_label_drawn_with_the_seed():
    first = preferences_from_labels(DOCS, TASK, seed=3)
    again = preferences_from_labels(DOCS, TASK, seed=3)
    assert first.chosen.map(lambda m: m[0]["content"]).tolist() == DOCS.party.tolist()
    rejected = first.rejected.map(lambda m: m[0]["content"])
    assert (rejected != DOCS.party).all()
    assert rejected.isin(TASK["labels"]).all()
    assert rejected.tolist() == again.rejected.map(lambda m: m[0]["content"]).tolist()


def test_preferences_from_file_rejects_pairs_whose_answers_are_equal_or_missing():
    rows = pd.DataFrame(
        {
            "prompt": ["Q1", "Q2", "Q3"],
            "chosen": ["yes", "same", None],
            "rejected": ["no", " same", "x"],
        }
    )
    pairs, rejects = preferences_from_file(rows, TASK, "train")
    assert pairs.doc_id.tolist() == ["pref-0"]
    assert pairs.prompt[0][-1] == {"role": "user", "content": "Q1"}
    assert rejects.reason.tolist() == [
        "build_preferences.chosen_equals_rejected",
        "build_preferences.missing_field",
    ]


def test_preferences_from_file_without_split_column_all_go_to_train():
    rows = pd.DataFrame({"prompt": ["Q"], "chosen": ["a"], "rejected": ["b"]})
    assert len(preferences_from_file(rows, TASK, "train")[0]) == 1
    assert len(preferences_from_file(rows, TASK, "test")[0]) == 0


def test_cap_examples_draws_with_the_seed_and_keeps_order():
    df = pd.DataFrame({"x": np.arange(100)})
    capped = cap_examples(df, 10, seed=1)
    assert len(capped) == 10
    assert capped.x.is_monotonic_increasing
    assert capped.x.tolist() == cap_examples(df, 10, seed=1).x.tolist()
    assert cap_examples(df, None, seed=1) is df


def test_build_preferences_caps_pairs_with_the_seed(tmp_path):
    from locallm.tables import read_table, write_table
    from locallm.task.prompts import build_preferences

    write_table(DOCS, tmp_path / "train.parquet")
    task = {**TASK, "preferences": {**TASK["preferences"], "max_pairs": 2}}
    args = (tmp_path / "train.parquet", tmp_path / "p.parquet", tmp_path / "r.parquet", task)
    build_preferences(*args, split="train", seed=0)
    assert len(read_table(tmp_path / "p.parquet")) == 2
    assert len(read_table(tmp_path / "r.parquet")) == 0


def labelled_train(per_label: dict[str, int]) -> pd.DataFrame:
    """A train split with `n` rows of each label, doc_ids named after their label."""
    rows = [
        {"doc_id": f"{label}-{i}", "group_id": f"{label}-g{i}", "text": f"text {label} {i}",
         "year": 1900 + i, "party": label}
        for label, n in per_label.items()
        for i in range(n)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_fewshot_examples_are_k_train_rows_per_label_drawn_with_the_seed():
    train = labelled_train({"Democratic": 20, "Republican": 15, "Whig": 9})
    examples = fewshot_examples(train, TASK, k=3, seed=5)
    assert examples["party"].value_counts().to_dict() == {
        "Democratic": 3, "Republican": 3, "Whig": 3
    }  # fmt: skip
    assert set(examples["doc_id"]) <= set(train["doc_id"])
    again = fewshot_examples(train, TASK, k=3, seed=5)
    assert again["doc_id"].tolist() == examples["doc_id"].tolist()
    other = fewshot_examples(train, TASK, k=3, seed=6)
    assert set(other["doc_id"]) != set(examples["doc_id"])
    # Shuffled across labels, not one label's examples in a block.
    assert examples["party"].tolist() != sorted(examples["party"].tolist())


def test_fewshot_examples_never_include_a_document_being_asked_about():
    train = labelled_train({"Democratic": 4, "Republican": 4, "Whig": 4})
    asked = ["Democratic-0", "Democratic-1", "Republican-3"]
    for seed in range(10):
        examples = fewshot_examples(train, TASK, k=2, seed=seed, exclude=asked)
        assert not set(examples["doc_id"]) & set(asked)
        assert len(examples) == 6


def test_fewshot_examples_are_drawn_from_the_shortest_share_of_each_label():
    train = labelled_train({"Democratic": 40, "Republican": 8})
    # Row i's text grows with i: the shortest quarter of Democratic rows are 0-9.
    train["text"] = [("word " * (i + 1)).strip() for i in range(40)] + ["w " * 50] * 8
    for seed in range(5):
        examples = fewshot_examples(train, TASK, k=2, seed=seed, shortest=0.25)
        democratic = examples[examples["party"] == "Democratic"]["doc_id"]
        assert {int(d.split("-")[1]) for d in democratic} <= set(range(10))
        # A label with fewer rows still gives k: at least k rows stay in its pool.
        assert (examples["party"] == "Republican").sum() == 2
    drawn = {
        d for s in range(20) for d in fewshot_examples(train, TASK, 2, s, shortest=1.0)["doc_id"]
    }
    assert any(d.startswith("Democratic-") and int(d.split("-")[1]) >= 10 for d in drawn)


def test_fewshot_examples_warn_when_a_label_has_fewer_than_k_rows(caplog):
    train = labelled_train({"Democratic": 5, "Republican": 5, "Whig": 1})
    examples = fewshot_examples(train, TASK, k=2, seed=0)
    assert examples["party"].value_counts().to_dict() == {
        "Democratic": 2, "Republican": 2, "Whig": 1
    }  # fmt: skip
    assert "label 'Whig' has 1 train rows" in caplog.text


def test_build_prompt_puts_fewshot_examples_as_answered_turns_before_the_question():
    examples = DOCS.iloc[1:].to_dict("records")
    messages = build_prompt(DOCS.iloc[0], TASK, examples)
    assert [m["role"] for m in messages] == [
        "system", "user", "assistant", "user", "assistant", "user"
    ]  # fmt: skip
    assert messages[1]["content"] == "Party of the speaker of 1987?\n\nTear down this wall."
    assert [messages[2]["content"], messages[4]["content"]] == ["Republican", "Whig"]
    assert messages[-1] == build_prompt(DOCS.iloc[0], TASK)[-1]
