"""Batched inference: label scoring, generation, tolerant parsing, self-consistency, precision."""

import numpy as np
import pandas as pd
import pytest
import torch
from locallm.config import with_defaults
from locallm.infer.generation import generate_texts, majority_vote, parse_label
from locallm.infer.predict import (
    answer_tokens,
    fit_to_context,
    infer_shard,
    predict,
    render_prompts,
)
from locallm.infer.scoring import (
    label_continuations,
    label_log_likelihoods,
    label_probabilities,
    text_log_likelihoods,
)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}<eos>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
TEXTS = [
    "Which party? The union is strong and our economy grows.",
    "We must cut taxes, balance the budget and defend the nation.",
    "Health care for every family and schools for every child.",
    "Democratic Republican answer label",
]
SETTINGS = {
    "mode": "classify",
    "label_scoring": "sum",
    "batch_size": 3,
    "batch_tokens": 64,
    "max_new_tokens": 4,
    "do_sample": False,
    "temperature": 1.0,
    "top_p": 1.0,
    "num_samples": 1,
    "prefix_cache": False,
}


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE with pad, EOS and a chat template, trained on a few sentences."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<eos>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TEXTS * 3, trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def tiny_llama(tokenizer, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config).eval()


def conversation(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_llama(tokenizer)


@pytest.fixture(scope="module")
def republican_model(tokenizer):
    """A tiny Llama trained for a few dozen steps to answer every prompt with 'Republican'."""
    model = tiny_llama(tokenizer, seed=1).train()
    texts = [
        tokenizer.apply_chat_template(
            [*conversation(t), {"role": "assistant", "content": "Republican"}], tokenize=False
        )
        for t in TEXTS
    ]
    batch = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = model(**batch, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


class EchoModel(torch.nn.Module):
    """A fake model whose 'generation' repeats its prompt, so an output names its input."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.batch_sizes = []

    def generate(self, input_ids, attention_mask, num_return_sequences=1, **_):
        self.batch_sizes.append(len(input_ids))
        # Generated tokens follow the (left-padded) prompt; echo it again, padding first.
        echoed = input_ids.repeat_interleave(num_return_sequences, 0)
        return torch.cat([echoed, echoed], dim=1)


def test_generate_restores_input_order_after_length_sorted_batching(tokenizer):
    prompts = ["a", "the union is strong", "we must", "health care for every family", "cut"]
    echo = EchoModel()
    outputs = generate_texts(echo, tokenizer, prompts, batch_size=2, max_new_tokens=4)
    assert outputs == [[p] for p in prompts]
    assert echo.batch_sizes == [2, 2, 1]


def test_generate_returns_num_samples_per_prompt_in_order(tokenizer):
    prompts = ["we must", "a", "health care"]
    outputs = generate_texts(
        EchoModel(), tokenizer, prompts, batch_size=2, max_new_tokens=4, num_samples=3
    )
    assert outputs == [[p] * 3 for p in prompts]


def test_batched_greedy_generation_equals_one_prompt_at_a_time(tokenizer, model):
    prompts = [t[: 10 + 9 * i] for i, t in enumerate(TEXTS)]
    batched = generate_texts(model, tokenizer, prompts, batch_size=4, max_new_tokens=6)
    single = generate_texts(model, tokenizer, prompts, batch_size=1, max_new_tokens=6)
    assert batched == single
    assert any(len(o[0]) > 0 for o in batched)


def test_static_cache_generates_what_the_dynamic_cache_generates(tokenizer, model):
    prompts = [f"{t} " * (k + 1) for k, t in enumerate(TEXTS)]  # lengths differ: left padding
    static = generate_texts(model, tokenizer, prompts, batch_size=4, max_new_tokens=8)
    dynamic = generate_texts(
        model, tokenizer, prompts, batch_size=4, max_new_tokens=8, cache_implementation=None
    )
    assert static == dynamic


def test_seeded_sampling_is_reproducible(tokenizer, model):
    kwargs = {"batch_size": 2, "max_new_tokens": 6, "do_sample": True, "num_samples": 3}
    first = generate_texts(model, tokenizer, TEXTS, seed=5, **kwargs)
    again = generate_texts(model, tokenizer, TEXTS, seed=5, **kwargs)
    assert first == again


def test_label_continuation_is_the_templated_answer_with_eos(tokenizer):
    conts = label_continuations(tokenizer, conversation("x"), ["Democratic", "Republican"])
    assert conts == ["Democratic<eos>", "Republican<eos>"]


def test_cached_batched_label_scores_equal_full_sequence_scores(tokenizer, model):
    prompts = render_prompts(tokenizer, [conversation(t) for t in TEXTS])
    conts = ["Democratic<eos>", "Republican<eos>", "a<eos>"]
    scores, n_tokens = label_log_likelihoods(model, tokenizer, prompts, conts, batch_tokens=64)
    for i, prompt in enumerate(prompts):
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for j, cont in enumerate(conts):
            c_ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p_ids + c_ids])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
            expected = sum(logp[len(p_ids) - 1 + k, t].item() for k, t in enumerate(c_ids))
            assert scores[i, j] == pytest.approx(expected, abs=1e-4)
            assert n_tokens[j] == len(c_ids)


def test_token_batched_label_scores_equal_row_batched_scores(tokenizer, model):
    prompts = render_prompts(
        tokenizer, [conversation(t[: 12 + 7 * i]) for i, t in enumerate(TEXTS)]
    )
    conts = ["Democratic<eos>", "Republican<eos>"]
    rows, _ = label_log_likelihoods(
        model, tokenizer, prompts, conts, batch_tokens=10**6, max_rows=2
    )
    alone, _ = label_log_likelihoods(model, tokenizer, prompts, conts, batch_tokens=1)
    tokens, _ = label_log_likelihoods(model, tokenizer, prompts, conts, batch_tokens=40)
    assert np.allclose(tokens, rows, atol=1e-5) and np.allclose(alone, rows, atol=1e-5)


def test_generate_batches_within_the_token_budget_give_the_outputs_of_one_prompt_at_a_time(
    tokenizer, model
):
    prompts = [t[: 10 + 9 * i] for i, t in enumerate(TEXTS)]
    budgeted = generate_texts(
        model, tokenizer, prompts, batch_size=4, batch_tokens=60, max_new_tokens=6
    )
    single = generate_texts(model, tokenizer, prompts, batch_size=1, max_new_tokens=6)
    assert budgeted == single
    echo = EchoModel()
    generate_texts(echo, tokenizer, ["a b"] * 6, batch_size=4, batch_tokens=20, max_new_tokens=3)
    width = len(tokenizer("a b", add_special_tokens=False)["input_ids"]) + 3
    assert sum(echo.batch_sizes) == 6 and max(echo.batch_sizes) > 1
    assert all(rows * width <= 20 for rows in echo.batch_sizes)


def test_classify_picks_the_label_the_model_was_trained_to_prefer(tokenizer, republican_model):
    unseen = [conversation("A new passage about roads and bridges."), conversation("Peace.")]
    frame = predict(
        republican_model, tokenizer, unseen, SETTINGS, ["Democratic", "Republican"], seed=0
    )
    assert frame["parsed_label"].tolist() == ["Republican", "Republican"]
    assert (frame["prob_Republican"] > 0.9).all()
    assert np.allclose(frame["prob_Democratic"] + frame["prob_Republican"], 1.0)


def test_generate_mode_parses_the_preferred_label(tokenizer, republican_model):
    settings = {**SETTINGS, "mode": "generate"}
    frame = predict(
        republican_model,
        tokenizer,
        [conversation("Peace.")],
        settings,
        ["Democratic", "Republican"],
        0,
    )
    assert frame["output"].tolist() == ["Republican"]
    assert frame["parsed_label"].tolist() == ["Republican"]
    assert frame["vote_share"].tolist() == [1.0]
    assert frame["unmatched"].tolist() == [False]


def test_sum_scoring_favours_fewer_tokens_and_mean_scoring_does_not():
    # Label A: one token of log-prob -1; label B: three tokens of -0.5 each (sum -1.5).
    ll, n_tokens = np.array([[-1.0, -1.5]]), np.array([1, 3])
    summed = label_probabilities(ll, n_tokens, "sum")
    mean = label_probabilities(ll, n_tokens, "mean")
    assert summed[0] == pytest.approx([1 / (1 + np.exp(-0.5)), 1 - 1 / (1 + np.exp(-0.5))])
    assert mean[0] == pytest.approx([1 / (1 + np.exp(0.5)), 1 - 1 / (1 + np.exp(0.5))])


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Republican", "Republican"),
        ("  republican.\n", "Republican"),
        ("REPUBLICAN!", "Republican"),
        ("The answer is: Democratic", "Democratic"),
        ("Answer: democratic", "Democratic"),
        ('"Democratic"', "Democratic"),
        ("Democratic, because of the tone", "Democratic"),
        ("I think this is Republican rhetoric", "Republican"),
        ("Democratic-Republican", "Democratic-Republican"),
        ("Democratic or Republican", None),
        ("Whig", None),
        ("", None),
    ],
)
def test_parse_label_is_tolerant_and_marks_unmatched(output, expected):
    labels = ["Democratic", "Republican", "Democratic-Republican"]
    assert parse_label(output, labels) == expected


def test_majority_vote_counts_unmatched_samples_in_the_share():
    assert majority_vote(["A", None, "B", "A", None]) == ("A", 0.4)
    assert majority_vote(["B", "A", "A", "B"]) == ("B", 0.5)  # tie: earliest sample wins
    assert majority_vote([None, None]) == (None, 0.0)


def test_generate_mode_marks_unmatched_outputs_without_dropping_rows(tokenizer):
    settings = {**SETTINGS, "mode": "generate"}
    rows = [conversation("Republican"), conversation("Whig")]
    frame = predict(EchoModel(), tokenizer, rows, settings, ["Democratic", "Republican"], 0)
    assert len(frame) == 2
    assert frame["unmatched"].tolist() == [False, True]
    assert frame["parsed_label"].isna().tolist() == [False, True]


def test_text_log_likelihoods_equal_the_model_loss_per_text(tokenizer, model):
    nll, n_tokens = text_log_likelihoods(model, tokenizer, TEXTS, batch_size=3, max_tokens=12)
    for i, text in enumerate(TEXTS):
        ids = torch.tensor([tokenizer(text)["input_ids"][:12]])
        with torch.no_grad():
            loss = model(input_ids=ids, labels=ids).loss.item()
        assert n_tokens[i] == ids.shape[1] - 1
        assert nll[i] / n_tokens[i] == pytest.approx(loss, rel=1e-4)


# --- the model's context, progress, few-shot ---------------------------------------------------

# How prompts are rendered: the schema's defaults (a model with a chat template keeps it).
FORMAT = {
    key: with_defaults()["training"][key]
    for key in ("chat_template", "prompt_format", "completion_format")
}
TASK = {
    "kind": "classify",
    "system_prompt": None,
    "prompt": "Which party? Answer Democratic or Republican.\n\n{text}",
    "label_column": "party",
    "labels": ["Democratic", "Republican"],
}
LONG_TEXTS = [" ".join([t] * n) for t, n in zip(TEXTS, [20, 35, 50, 8], strict=True)]


def tiny_gpt2(tokenizer) -> GPT2LMHeadModel:
    """GPT-2's shape: learned positions, so a prompt past n_positions indexes out of range."""
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    return GPT2LMHeadModel(config).eval()


def rows_of(texts, prefix="t"):
    return [
        {"doc_id": f"{prefix}{i}", "group_id": f"g{i}", "text": t,
         "party": ["Democratic", "Republican"][i % 2]}
        for i, t in enumerate(texts)
    ]  # fmt: skip


@pytest.mark.parametrize("mode", ["classify", "generate"])
def test_a_gpt2_shaped_base_with_128_positions_runs_long_prompts_once_they_are_cut(tokenizer, mode):
    from locallm.task.prompts import build_prompt

    model = tiny_gpt2(tokenizer)
    settings = {**SETTINGS, "mode": mode, "max_new_tokens": 6, "max_cut_share": 0.5}
    rows, examples = rows_of(LONG_TEXTS), rows_of(LONG_TEXTS[:2], prefix="train")
    labels = TASK["labels"]
    uncut = [build_prompt(row, TASK, examples) for row in rows]
    with pytest.raises(IndexError):  # what inference did before: positions past the table
        predict(model, tokenizer, uncut, settings, labels, seed=0)
    fitted = fit_to_context(model, tokenizer, rows, TASK, examples, settings)
    conversations, cut, n_tokens = fitted.conversations, fitted.text_cut, fitted.prompt_tokens
    reserve = answer_tokens(tokenizer, uncut[0], labels, settings)
    assert reserve == (settings["max_new_tokens"] if mode == "generate" else 3)  # "Republican<eos>"
    assert cut.all() and (n_tokens + reserve <= 128).all()
    assert all(c[-1]["content"].startswith("Which party? Answer") for c in conversations)
    frame = predict(model, tokenizer, conversations, settings, labels, seed=0)
    assert len(frame) == len(rows)
    if mode == "classify":
        probs = frame[[f"prob_{label}" for label in labels]].to_numpy()
        assert np.allclose(probs.sum(axis=1), 1.0)


def test_fit_to_context_leaves_prompts_that_fit_uncut_and_warns_above_the_share(tokenizer, caplog):
    caplog.set_level("INFO")
    model = tiny_gpt2(tokenizer)
    settings = {**SETTINGS, "max_cut_share": 0.25}
    rows = rows_of([TEXTS[0], TEXTS[1], LONG_TEXTS[2], TEXTS[3]])
    fitted = fit_to_context(model, tokenizer, rows, TASK, [], settings)
    assert fitted.text_cut.tolist() == [False, False, True, False]
    assert fitted.text_seen[[0, 1, 3]].tolist() == [1.0, 1.0, 1.0] and fitted.text_seen[2] < 1
    assert "1 of 4 prompts had the passage cut" in caplog.text
    assert "WARNING" not in caplog.text
    rows = rows_of([TEXTS[0], LONG_TEXTS[1], LONG_TEXTS[2], TEXTS[3]])
    assert fit_to_context(model, tokenizer, rows, TASK, [], settings).text_cut.sum() == 2
    assert any(r.levelname == "WARNING" and "max_cut_share" in r.message for r in caplog.records)


def test_fewshot_infer_shard_records_balanced_train_examples_and_never_a_test_document(
    tmp_path, tokenizer, model
):
    from locallm.tables import write_table

    base = tmp_path / "base"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    test = pd.DataFrame(rows_of(TEXTS * 2, prefix="test"))
    # The train split also holds two test doc_ids: the guard must keep them out of the prompts.
    train = pd.DataFrame(rows_of(TEXTS * 3, prefix="train") + rows_of(TEXTS[:2], prefix="test"))
    write_table(test, tmp_path / "test.parquet")
    write_table(train, tmp_path / "train.parquet")
    config = with_defaults({"inference": {"fewshot_k": 2, "max_cut_share": 1.0}})
    settings = {k: v for k, v in config["inference"].items()}
    runs = []
    for run in range(2):
        out = tmp_path / f"fewshot{run}.parquet"
        infer_shard(
            table=tmp_path / "test.parquet", output=out, shard=0, settings=settings, task=TASK,
            model_settings={"base": str(base), "method": "lora", "trust_remote_code": False,
                            **FORMAT},
            metadata_columns=[], seed=3, variant="v", stage="fewshot", base_dir=None,
            adapter_dir=None, examples_table=tmp_path / "train.parquet",
        )  # fmt: skip
        runs.append(pd.read_parquet(out))
    predictions = runs[0]
    assert predictions["doc_id"].tolist() == test["doc_id"].tolist()
    used = [list(ids) for ids in predictions["fewshot_doc_ids"]]
    assert all(ids == used[0] for ids in used) and len(used[0]) == 4
    assert set(used[0]) <= set(train["doc_id"]) and not set(used[0]) & set(test["doc_id"])
    parties = train.set_index("doc_id").loc[used[0], "party"]
    assert parties.value_counts().to_dict() == {"Democratic": 2, "Republican": 2}
    assert [list(ids) for ids in runs[1]["fewshot_doc_ids"]] == used  # seeded
    assert predictions["text_cut"].dtype == bool and (predictions["prompt_tokens"] > 0).all()
    assert (
        predictions["text_seen"].between(0, 1).all() and predictions["examples_cut"].dtype == bool
    )
    assert (predictions["model_params"] == sum(p.numel() for p in model.parameters())).all()


def test_a_model_without_a_context_length_is_not_cut_and_says_so(tokenizer, caplog):
    rows = rows_of(LONG_TEXTS)
    fitted = fit_to_context(EchoModel(), tokenizer, rows, TASK, [], SETTINGS)
    assert not fitted.text_cut.any() and (fitted.prompt_tokens > 128).any()
    assert (fitted.text_seen == 1).all()
    assert fitted.conversations[2][-1]["content"].endswith(LONG_TEXTS[2])
    assert "names no context length" in caplog.text


# --- precision ------------------------------------------------------------------------------------

PARTIES = ["Democratic", "Republican", "Democratic", "Republican"]


@pytest.fixture(scope="module")
def party_model(tokenizer):
    """A tiny Llama trained to answer each of TEXTS with its own party (not one label for all)."""
    model = tiny_llama(tokenizer, seed=2).train()
    texts = [
        tokenizer.apply_chat_template(
            [*conversation(t), {"role": "assistant", "content": p}], tokenize=False
        )
        for t, p in zip(TEXTS, PARTIES, strict=True)
    ]
    batch = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = model(**batch, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def test_bfloat16_and_float32_classify_alike_on_a_trained_model(tokenizer, party_model):
    """The documented tolerance: >= 95% label agreement and at most 0.5 nats per label score."""
    import copy

    prompts = [conversation(t) for t in TEXTS]
    prompts += [conversation(f"{prefix} {t}") for prefix in ("Indeed,", "So:", "") for t in TEXTS]
    prompts += [conversation(t[: len(t) // 2]) for t in TEXTS]
    labels = ["Democratic", "Republican"]
    full = predict(party_model, tokenizer, prompts, SETTINGS, labels, seed=0)
    half_model = copy.deepcopy(party_model).to(torch.bfloat16)
    half = predict(half_model, tokenizer, prompts, SETTINGS, labels, seed=0)
    assert full["parsed_label"].tolist()[:4] == PARTIES  # the model learned the task
    agreement = (full["parsed_label"] == half["parsed_label"]).mean()
    columns = [f"loglik_{label}" for label in labels]
    delta = np.abs(full[columns].to_numpy() - half[columns].to_numpy()).max()
    print(f"bf16 vs fp32: label agreement {agreement:.3f}, max |delta log-lik| {delta:.4f}")
    assert agreement >= 0.95
    assert delta <= 0.5


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_infer_shard_loads_in_the_configured_precision_and_records_it(
    tmp_path, tokenizer, party_model, precision
):
    from locallm.tables import write_table

    base = tmp_path / "base"
    party_model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    write_table(pd.DataFrame(rows_of(TEXTS)), tmp_path / "test.parquet")
    config = with_defaults({"inference": {"precision": precision, "max_cut_share": 1.0}})
    infer_shard(
        table=tmp_path / "test.parquet", output=tmp_path / "out.parquet", shard=0,
        settings=dict(config["inference"]), task=TASK,
        model_settings={"base": str(base), "method": "lora", "trust_remote_code": False,
                            **FORMAT},
        metadata_columns=[], seed=0, variant="v", stage="base", base_dir=None, adapter_dir=None,
    )  # fmt: skip
    predictions = pd.read_parquet(tmp_path / "out.parquet")
    assert predictions["gen_precision"].tolist() == [precision] * len(TEXTS)
    assert predictions["parsed_label"].notna().all()


# --- shared-prefix caching --------------------------------------------------------------------


def test_shared_prefix_leaves_every_prompt_at_least_one_token_of_its_own():
    from locallm.infer.scoring import shared_prefix

    assert shared_prefix([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == [1, 2]
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]
    assert shared_prefix([[7, 2], [1, 2]]) == []


@pytest.mark.parametrize("batch_tokens", [1, 40, 4096])
def test_prefix_caching_gives_the_labels_and_scores_of_running_each_prompt_whole(
    tokenizer, party_model, batch_tokens
):
    task = {**TASK, "system_prompt": "You read speeches."}
    examples = rows_of(TEXTS[:2], prefix="e")
    # Passages of different lengths: the remainders after the shared prefix pad differently.
    texts = TEXTS + [t[: len(t) // 3] for t in TEXTS] + [" ".join([t] * 3) for t in TEXTS]
    from locallm.task.prompts import build_prompt

    prompts = render_prompts(tokenizer, [build_prompt(r, task, examples) for r in rows_of(texts)])
    conts = label_continuations(tokenizer, conversation(TEXTS[0]), ["Democratic", "Republican"])
    whole, _ = label_log_likelihoods(party_model, tokenizer, prompts, conts, batch_tokens=4096)
    cached, _ = label_log_likelihoods(
        party_model, tokenizer, prompts, conts, batch_tokens=batch_tokens, prefix_cache=True
    )
    assert (whole.argmax(1) == cached.argmax(1)).all()
    np.testing.assert_allclose(cached, whole, atol=1e-4)
