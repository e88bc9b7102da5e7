"""Prompts cut to the model's context: only document text goes, instruction and answers stay."""

import pytest
from locallm.model.facts import context_length
from locallm.task.context import equal_share_cap, fit_prompt, prompt_tokens
from locallm.task.prompts import build_prompt
from test_inference import tiny_tokenizer
from transformers import GPT2Config, LlamaConfig

TASK = {
    "kind": "classify",
    "system_prompt": None,
    "prompt": "Spoken or written? Answer spoken or written.\n\n{text}",
    "label_column": "sotu_type",
    "labels": ["spoken", "written"],
}
LONG = " ".join(["The union is strong and our economy grows"] * 60)


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_context_length_reads_each_architectures_key():
    assert context_length(LlamaConfig(max_position_embeddings=300)) == 300
    assert context_length(GPT2Config(n_positions=128)) == 128
    assert context_length({"text_config": {"max_position_embeddings": 64}, "n_ctx": 9}) == 64
    assert context_length({"hidden_size": 8}) is None


def test_equal_share_cap_keeps_short_texts_whole_and_splits_the_rest_evenly():
    assert equal_share_cap([10, 100, 100], 110) == 50
    assert equal_share_cap([5, 5], 100) == 5
    assert equal_share_cap([30, 40], 0) == 0
    lengths = [3, 17, 80, 200]
    cap = equal_share_cap(lengths, 90)
    assert sum(min(n, cap) for n in lengths) <= 90 < sum(min(n, cap + 1) for n in lengths)


def test_a_prompt_that_fits_is_left_alone(tokenizer):
    row = {"doc_id": "a", "text": "Short passage.", "sotu_type": "spoken"}
    fitted = fit_prompt(row, TASK, [], tokenizer, budget=200)
    assert not fitted.cut and not fitted.examples_cut and fitted.seen == 1.0
    assert fitted.conversation[-1]["content"].endswith("Short passage.")
    assert fitted.tokens == prompt_tokens(tokenizer, fitted.conversation)


def test_the_examples_give_way_before_the_passage_asked_about(tokenizer):
    examples = [
        {"doc_id": "e1", "text": LONG, "sotu_type": "written"},
        {"doc_id": "e2", "text": "A short example.", "sotu_type": "spoken"},
    ]
    row = {"doc_id": "q", "text": "Fellow citizens, " + LONG[:200], "sotu_type": "spoken"}
    empty = build_prompt({**row, "text": ""}, TASK, [{**e, "text": ""} for e in examples])
    passage = len(tokenizer(row["text"], add_special_tokens=False)["input_ids"])
    # The fixed parts, the whole passage, and 60 tokens for the examples' texts.
    budget = prompt_tokens(tokenizer, empty) + passage + 60
    assert prompt_tokens(tokenizer, build_prompt(row, TASK, examples)) > budget + 200
    fitted = fit_prompt(row, TASK, examples, tokenizer, budget)
    assert fitted.tokens <= budget and fitted.tokens == prompt_tokens(
        tokenizer, fitted.conversation
    )
    assert not fitted.cut and fitted.seen == 1.0 and fitted.examples_cut
    instruction = "Spoken or written? Answer spoken or written.\n\n"
    users = [m["content"] for m in fitted.conversation if m["role"] == "user"]
    assert len(users) == 3 and all(u.startswith(instruction) for u in users)
    answers = [m["content"] for m in fitted.conversation if m["role"] == "assistant"]
    assert answers == ["written", "spoken"]
    # The passage and the short example stay whole; the long example is cut from its end.
    assert users[2] == instruction + row["text"]
    assert users[1] == instruction + "A short example."
    assert users[0].startswith(instruction + "The union") and len(users[0]) < len(LONG)


def test_a_passage_too_long_for_the_context_is_cut_with_the_examples_and_its_share_kept(tokenizer):
    examples = [{"doc_id": "e1", "text": LONG, "sotu_type": "written"}]
    row = {"doc_id": "q", "text": "Fellow citizens " + LONG, "sotu_type": "spoken"}
    empty = build_prompt({**row, "text": ""}, TASK, [{**e, "text": ""} for e in examples])
    budget = prompt_tokens(tokenizer, empty) + 60  # the fixed parts and 60 tokens of text
    fitted = fit_prompt(row, TASK, examples, tokenizer, budget)
    passage = len(tokenizer(row["text"], add_special_tokens=False)["input_ids"])
    assert fitted.cut and fitted.examples_cut and fitted.tokens <= budget
    assert fitted.passage_tokens == passage and 0 < fitted.passage_kept <= 30
    assert fitted.seen == pytest.approx(fitted.passage_kept / passage)
    users = [m["content"] for m in fitted.conversation if m["role"] == "user"]
    assert users[1].startswith("Spoken or written? Answer spoken or written.\n\nFellow citizens")


def test_a_prompt_whose_fixed_part_exceeds_the_context_is_a_clear_error(tokenizer):
    row = {"doc_id": "q", "text": "Short.", "sotu_type": "spoken"}
    task = {**TASK, "prompt": LONG + "\n\n{text}"}
    with pytest.raises(ValueError, match=r"doc_id 'q'.*without any document text.*task.prompt"):
        fit_prompt(row, task, [], tokenizer, budget=40)
