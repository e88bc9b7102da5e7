"""Chat template, loss mask, truncation, packing without cross-example attention."""

import pandas as pd
import pytest
import torch
from locallm.model.tiny import tiny_model, train_tokenizer
from locallm.train.tokenization import (
    IGNORE,
    Collator,
    check_truncation,
    pack,
    tokenize_example,
    tokenize_table,
)

TEXTS = ["The state of the union is strong.", "We the people.", "Democratic Republican"] * 30
PROMPTS = ["The state of the union is strong.", "We the people", "Strong union", "A people"]
ANSWERS = ["Democratic", "Republican", "Democratic", "Republican"]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TEXTS, vocab_size=300)


def sft_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(len(PROMPTS))],
            "group_id": [f"g{i}" for i in range(len(PROMPTS))],
            "prompt": [[{"role": "user", "content": p}] for p in PROMPTS],
            "completion": [[{"role": "assistant", "content": a}] for a in ANSWERS],
        }
    )


def test_only_completion_tokens_carry_labels_and_eos_closes_them(tokenizer):
    prompt = [{"role": "user", "content": "We the people"}]
    example = tokenize_example(prompt, [{"role": "assistant", "content": "Republican"}], tokenizer)
    labelled = [
        t for t, lab in zip(example["input_ids"], example["labels"], strict=True) if lab != IGNORE
    ]
    assert tokenizer.decode(labelled) == "Republican<|end|>"
    assert labelled[-1] == tokenizer.eos_token_id
    n_prompt = example["labels"].count(IGNORE)
    prompt_text = tokenizer.decode(example["input_ids"][:n_prompt])
    assert prompt_text == "<|user|>We the people<|end|><|assistant|>"


def test_labels_equal_input_ids_on_the_completion(tokenizer):
    example = tokenize_example(
        [{"role": "user", "content": "x"}],
        [{"role": "assistant", "content": "Democratic"}],
        tokenizer,
    )
    pairs = list(zip(example["input_ids"], example["labels"], strict=True))
    assert all(lab in (IGNORE, tok) for tok, lab in pairs)


def test_a_long_prompt_loses_the_end_of_its_text_never_the_answer(tokenizer):
    examples = tokenize_table(sft_rows(), tokenizer, max_length=12)
    first = examples.iloc[0]
    assert len(first.input_ids) <= 12
    assert first.truncated and first.length > 12
    labelled = [t for t, lab in zip(first.input_ids, first.labels, strict=True) if lab != IGNORE]
    assert tokenizer.decode(labelled) == "Democratic<|end|>"
    text = tokenizer.decode(first.input_ids)
    assert text.startswith("<|user|>The") and "<|end|><|assistant|>Democratic" in text


def test_prompts_that_fit_are_not_cut(tokenizer):
    examples = tokenize_table(sft_rows(), tokenizer, max_length=64)
    assert not examples.truncated.any()
    assert (examples.input_ids.map(len) == examples.length).all()


def test_check_truncation_warns_or_fails_per_config():
    report = pd.DataFrame(
        [
            {
                "split": "train",
                "examples": 10,
                "truncated": 3,
                "truncated_share": 0.3,
                "max_length": 8,
            }
        ]
    )
    check_truncation(report, {"max_truncated_share": 0.5, "truncation_error": True})
    with pytest.raises(ValueError, match="train: 3 of 10 examples"):
        check_truncation(report, {"max_truncated_share": 0.1, "truncation_error": True})


def test_an_empty_split_packs_into_an_empty_dataset_with_the_packed_columns(tokenizer):
    examples = tokenize_table(sft_rows().iloc[:0], tokenizer, max_length=64)
    packed = pack(examples, max_length=64)
    assert len(packed) == 0
    assert packed.column_names == pack(tokenize_table(sft_rows(), tokenizer, 64), 64).column_names


def test_packing_loses_no_token(tokenizer):
    examples = tokenize_table(sft_rows(), tokenizer, max_length=64)
    packed = pack(examples, max_length=64)
    assert len(packed) < len(examples)
    assert sorted(t for row in packed["input_ids"] for t in row) == sorted(
        t for row in examples.input_ids for t in row
    )
    assert sum(sum(row) for row in packed["seq_lengths"]) == examples.input_ids.map(len).sum()
    assert sum(lab != IGNORE for row in packed["labels"] for lab in row) == sum(
        lab != IGNORE for row in examples.labels for lab in row
    )


def test_collator_restarts_position_ids_per_packed_example(tokenizer):
    examples = tokenize_table(sft_rows(), tokenizer, max_length=64)
    packed = pack(examples, max_length=64)
    batch = Collator(tokenizer.pad_token_id)([packed[0]])
    lengths = packed[0]["seq_lengths"]
    assert "attention_mask" not in batch
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    assert (batch["position_ids"][0, starts] == 0).all()
    assert batch["position_ids"][0, lengths[0] - 1] == lengths[0] - 1


def test_packed_examples_do_not_attend_to_each_other(tokenizer):
    """The logits of an example packed after another equal those of the example alone."""
    model = tiny_model(
        tokenizer,
        {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "context_length": 128,
        },
        seed=0,
    )
    examples = tokenize_table(sft_rows(), tokenizer)
    first, second = examples.input_ids[0], examples.input_ids[1]
    row = {
        "input_ids": first + second,
        "labels": first + second,
        "seq_lengths": [len(first), len(second)],
    }
    batch = Collator(tokenizer.pad_token_id)([row])
    with torch.no_grad():
        # Everything the trainer passes to the model but the labels.
        packed_logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        alone_logits = model(input_ids=torch.tensor([second])).logits
    torch.testing.assert_close(
        packed_logits[0, len(first) :], alone_logits[0], atol=1e-5, rtol=1e-4
    )


def test_collator_pads_unpacked_rows_with_an_attention_mask(tokenizer):
    rows = [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = Collator(tokenizer.pad_token_id)(rows)
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"][1].tolist() == [8, IGNORE, IGNORE]
    assert batch["input_ids"][1, 1] == tokenizer.pad_token_id
