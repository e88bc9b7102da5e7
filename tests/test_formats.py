"""Prompt formats: a base model (no chat template) is asked in plain-text completion blocks, and
zero-shot, few-shot, SFT and label scoring all render the same blocks."""

import pytest
from locallm.config import with_defaults
from locallm.config_checks import config_problems
from locallm.infer.scoring import label_continuations
from locallm.task.context import render_prompt
from locallm.task.formats import (
    apply_prompt_format,
    completion_parts,
    completion_problems,
    format_kind,
)
from locallm.task.prompts import build_prompt, format_target
from locallm.train.tokenization import IGNORE, tokenize_example
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

DEFAULTS = with_defaults()
FORMAT = {
    k: DEFAULTS["training"][k] for k in ("chat_template", "prompt_format", "completion_format")
}
TASK = {
    **DEFAULTS["task"],
    "prompt": "{text}\n\nQuestion: spoken or written?",
    "label_column": "sotu_type",
    "labels": ["spoken", "written"],
}
ROWS = [
    {"doc_id": "e1", "text": "Fellow citizens, we meet today.", "sotu_type": "spoken"},
    {"doc_id": "e2", "text": "The report of the Secretary is enclosed.", "sotu_type": "written"},
    {"doc_id": "q", "text": "I transmit herewith the treaty.", "sotu_type": "written"},
]


def base_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE without a chat template that puts <bos> before plain text (as Gemma's)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=["<pad>", "<bos>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(
        [r["text"] for r in ROWS] * 5 + ["Question: Answer: spoken written"], trainer
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>"
    )


def block(row: dict) -> str:
    """One solved block of the default completion format."""
    return f"{TASK['prompt'].format(**row)}\nAnswer: {row['sotu_type']}\n\n"


def test_a_completion_format_needs_prompt_then_answer_once():
    assert completion_problems("{prompt}\nAnswer: {answer}\n\n") == []
    for bad in ("{answer} {prompt}", "{prompt} only", "{prompt}{answer}{answer}", "{prompt} {x}"):
        (problem,) = completion_problems(bad)
        assert (
            problem.startswith("config training.completion_format") and "{prompt} then" in problem
        )
    raw = {"training": {"completion_format": "{answer}: {prompt}"}}
    assert any("completion_format" in p for p in config_problems(with_defaults(raw)))


def test_the_space_before_the_answer_goes_with_the_answer():
    parts = completion_parts("Passage: {prompt}\nAnswer: {answer}\n\n")
    assert parts == {"head": "Passage: ", "cue": "\nAnswer:", "lead": " ", "tail": "\n\n"}


def test_auto_picks_chat_for_a_template_and_completion_for_a_base_model():
    assert format_kind(FORMAT, has_template=True) == "chat"
    assert format_kind(FORMAT, has_template=False) == "completion"
    assert format_kind({**FORMAT, "chat_template": "{{ x }}"}, has_template=False) == "chat"
    assert format_kind({**FORMAT, "prompt_format": "completion"}, has_template=True) == "completion"


def test_zero_shot_few_shot_and_sft_render_the_same_completion_blocks():
    tokenizer = base_tokenizer()
    assert apply_prompt_format(tokenizer, FORMAT) == "completion"
    question, examples = ROWS[2], ROWS[:2]
    zero_shot = render_prompt(tokenizer, build_prompt(question, TASK))
    assert zero_shot == "<bos>" + TASK["prompt"].format(**question) + "\nAnswer:"
    few_shot = render_prompt(tokenizer, build_prompt(question, TASK, examples))
    # The examples are earlier solved blocks of the same form, then the same question.
    assert few_shot == "<bos>" + block(examples[0]) + block(examples[1]) + zero_shot[5:]
    # SFT trains on the question followed by its answer block: exactly the few-shot blocks' form.
    prompt = build_prompt(question, TASK)
    completion = [{"role": "assistant", "content": format_target(question, TASK)}]
    example = tokenize_example(prompt, completion, tokenizer)
    assert tokenizer.decode(example["input_ids"]) == "<bos>" + block(question) + "<eos>"
    answer = [
        t
        for t, label in zip(example["input_ids"], example["labels"], strict=True)
        if label != IGNORE
    ]
    assert tokenizer.decode(answer) == " written\n\n<eos>"
    # Scoring compares each label's continuation of the same question: what SFT taught.
    assert label_continuations(tokenizer, prompt, TASK["labels"]) == [" spoken\n\n", " written\n\n"]


def test_a_system_prompt_comes_first_and_template_syntax_in_text_stays_text():
    tokenizer = base_tokenizer()
    apply_prompt_format(tokenizer, FORMAT)
    task = {**TASK, "system_prompt": "Classify passages."}
    row = {**ROWS[2], "text": "{{ 7 * 7 }} {% if x %}"}
    rendered = render_prompt(tokenizer, build_prompt(row, task))
    question = "\n\nQuestion: spoken or written?\nAnswer:"
    assert rendered == "<bos>Classify passages.\n\n{{ 7 * 7 }} {% if x %}" + question


def test_an_instruct_model_keeps_its_chat_template_unless_told_completion():
    tokenizer = base_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"
    )
    assert apply_prompt_format(tokenizer, FORMAT) == "chat"
    assert render_prompt(tokenizer, build_prompt(ROWS[2], TASK)).startswith("<user>")
    assert apply_prompt_format(tokenizer, {**FORMAT, "prompt_format": "completion"}) == "completion"
    assert render_prompt(tokenizer, build_prompt(ROWS[2], TASK)).endswith("\nAnswer:")


def test_chat_on_a_model_without_a_template_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="no chat template; set training.chat_template"):
        apply_prompt_format(base_tokenizer(), {**FORMAT, "prompt_format": "chat"})
