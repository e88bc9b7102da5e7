"""Export: GGUF round trip on a tiny Llama, the Ollama Modelfile, unsupported architectures."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from locallm.config import with_defaults
from locallm.export.gguf_file import (
    UnsupportedArchitectureError,
    llama_rope_order,
    write_gguf,
)
from locallm.export.job import export_model, label_agreement
from locallm.export.ollama import PROMPT_MARK, modelfile, ollama_template
from locallm.tables import write_table
from locallm.task.context import render_prompt
from locallm.task.prompts import build_prompt
from test_inference import PARTIES, TEXTS, conversation, tiny_llama, tiny_tokenizer

TASK = with_defaults(
    {
        "task": {
            "kind": "classify",
            "prompt": "Which party? Answer Democratic or Republican.\n\n{text}",
            "label_column": "party",
            "labels": ["Democratic", "Republican"],
        }
    }
)["task"]
INFERENCE = with_defaults({})["inference"]
# Passages the party model was not trained on, so labels rest on more than memorised prompts.
VARIED = [f"{prefix} {t}" for prefix in ("Indeed,", "So:", "") for t in TEXTS]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny Llama (grouped-query attention) trained to answer each text with its own party."""
    model = tiny_llama(tokenizer, seed=2).train()
    texts = [
        tokenizer.apply_chat_template(
            build_prompt({"text": t}, TASK) + [{"role": "assistant", "content": p}],
            tokenize=False,
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
    folder = tmp_path_factory.mktemp("model")
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def rows(texts):
    return pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(len(texts))],
            "group_id": [f"g{i}" for i in range(len(texts))],
            "text": texts,
            "party": [PARTIES[i % 4] for i in range(len(texts))],
        }
    )


def test_rope_order_pairs_each_heads_halves_as_llama_cpp_rotates_them():
    # 2 heads of 4 dimensions: per head, rows (0, 2) and (1, 3) are rotated together.
    weight = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert llama_rope_order(weight, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@pytest.mark.parametrize("weight_type", ["f16", "q8_0"])
def test_the_exported_gguf_read_back_by_transformers_gives_the_models_labels(
    model_dir, tmp_path, weight_type
):
    gguf = tmp_path / "model.gguf"
    counts = write_gguf(model_dir, gguf, weight_type, {"name": "tiny"})
    assert counts[weight_type.upper()] == 2 * 7 + 2  # 7 matrices per layer, embeddings, output
    agreement = label_agreement(model_dir, gguf, rows(TEXTS + VARIED), TASK, [], INFERENCE)
    print(weight_type, agreement["max_abs_loglik_diff"].max())
    assert agreement["label_model"].tolist()[:4] == PARTIES  # the model learned the task
    assert agreement["same"].mean() >= 0.99
    assert agreement["max_abs_loglik_diff"].max() < (0.01 if weight_type == "f16" else 0.1)


def test_the_gguf_holds_tokenizer_chat_template_context_and_facts(model_dir, tmp_path, tokenizer):
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    gguf = tmp_path / "model.gguf"
    write_gguf(model_dir, gguf, "q8_0", {"name": "tiny", "licence": "apache-2.0", "variant": "v"})
    reader = GGUFReader(gguf)
    field = lambda key: reader.fields[key].contents()  # noqa: E731
    assert field("general.architecture") == "llama"
    assert field("llama.context_length") == 256
    assert field("general.license") == "apache-2.0"
    assert field("locallm.variant") == "v"
    assert field("tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert field("tokenizer.ggml.add_bos_token") is False
    assert field("tokenizer.chat_template") == tokenizer.chat_template
    read_back = AutoTokenizer.from_pretrained(tmp_path, gguf_file="model.gguf")
    prompt = render_prompt(tokenizer, conversation(TEXTS[1]) + [])
    assert (
        read_back(prompt, add_special_tokens=False)["input_ids"]
        == tokenizer(prompt, add_special_tokens=False)["input_ids"]
    )


def go_render(template: str, system: str | None, prompt: str) -> str:
    """What Ollama makes of the TEMPLATE, for the two variables it uses."""
    return template.replace("{{ .System }}", system or "").replace("{{ .Prompt }}", prompt)


def test_the_modelfile_sends_the_passage_in_the_evaluated_prompt_format(tokenizer):
    task = {**TASK, "system_prompt": "You label speeches."}
    text = modelfile(tokenizer, task, context=256)
    template = text.split('TEMPLATE """')[1].split('"""')[0]
    expected = render_prompt(tokenizer, build_prompt({"text": TEXTS[0]}, task))
    assert go_render(template, "You label speeches.", TEXTS[0]) == expected
    assert text.startswith("FROM ./model.gguf\n")
    assert 'SYSTEM """You label speeches."""' in text
    assert "PARAMETER temperature 0" in text
    assert 'PARAMETER stop "<eos>"' in text
    assert "PARAMETER num_ctx 256" in text


def test_a_fewshot_template_holds_the_solved_examples(tokenizer):
    examples = [{"text": TEXTS[1], "party": "Republican"}]
    template = ollama_template(tokenizer, TASK, examples)
    expected = render_prompt(tokenizer, build_prompt({"text": TEXTS[0]}, TASK, examples))
    assert go_render(template, None, TEXTS[0]) == expected
    assert PROMPT_MARK not in template


def test_an_unsupported_architecture_is_refused_with_what_can_be_exported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma3"}))
    with pytest.raises(UnsupportedArchitectureError, match="Llama-architecture models only"):
        write_gguf(tmp_path, tmp_path / "model.gguf", "q8_0", {})
    assert not (tmp_path / "model.gguf").exists()


def test_export_model_writes_gguf_modelfile_readme_and_the_label_check(model_dir, tmp_path):
    write_table(rows(TEXTS + VARIED), tmp_path / "test.parquet")
    settings = with_defaults({"export": {"type": "q4_0"}})["export"]
    export_model(
        model_dir=model_dir, output=tmp_path / "out", settings=settings, task=TASK,
        inference=INFERENCE, model_settings={"base": "x", "trust_remote_code": False},
        facts={"variant": "v1", "stage": "sft", "base": "builtin:tiny"},
        table=tmp_path / "test.parquet",
    )  # fmt: skip
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "Modelfile", "README.md", "agreement.tsv", "export_info.json", "model.gguf",
    ]  # fmt: skip
    info = json.loads((out / "export_info.json").read_text())
    assert info["weight_type"] == "q4_0" and info["checked_rows"] == len(TEXTS + VARIED)
    readme = (out / "README.md").read_text()
    assert "`Democratic`, `Republican`" in readme
    assert "ollama create v1-sft -f Modelfile" in readme
    assert "rollama::query" in readme and "ollamar::generate" in readme


# --- planning: which model, from where, refused when it cannot be written ---------------------


def test_export_input_names_the_merged_stage_and_refuses_other_architectures(tmp_path):
    from locallm.plan import Plan

    gemma = tmp_path / "gemma"
    gemma.mkdir()
    (gemma / "config.json").write_text(json.dumps({"model_type": "gemma3"}))
    config = with_defaults(
        {"variants": {"tiny": {}, "full": {"method": "full"}, "g": {"base": str(gemma)}}}
    )
    plan = Plan(config)
    assert plan.export_input("tiny", "sft")["model"] == "results/default/merged/tiny/sft"
    assert plan.export_input("full", "dpo")["model"] == "results/default/models/full/dpo"
    fewshot = plan.export_input("tiny", "fewshot")
    assert fewshot["examples"] == "results/default/splits/train.parquet"
    assert plan.export_model_path("tiny", "base") == "results/default/models/base"
    with pytest.raises(ValueError, match="variant g .*Llama-architecture models only.*'gemma3'"):
        plan.export_input("g", "sft")


def test_decision_exports_the_cheapest_good_enough_stage_and_its_best_variant(tmp_path):
    from locallm.export.choice import export_choice

    metrics = pd.DataFrame(
        {
            "variant": ["a", "b", "a", "b", "baseline"],
            "stage": ["base", "base", "sft", "sft", "majority"],
            "metric": ["macro_f1"] * 5,
            "value": [0.5, 0.6, 0.9, 0.8, 0.3],
            "ci_low": [0.4, 0.5, 0.8, 0.7, 0.2],
            "good_enough": [False, False, True, True, None],
        }
    )
    metrics.to_csv(tmp_path / "metrics.tsv", sep="\t", index=False)
    assert export_choice({"use": "decision"}, tmp_path / "metrics.tsv") == ("a", "sft")
    metrics["good_enough"] = [False, False, False, False, None]
    metrics.to_csv(tmp_path / "metrics.tsv", sep="\t", index=False)
    assert export_choice({"use": "decision"}, tmp_path / "metrics.tsv") is None
    named = {"use": {"variant": "b", "stage": "base"}}
    assert export_choice(named, tmp_path / "metrics.tsv") == ("b", "base")


def test_the_export_rule_writes_the_bootstrapped_base_as_gguf(test_workflow):
    from conftest import snakemake

    snakemake(test_workflow, "results/test/export/qlora_r8/base")
    out = test_workflow / "results" / "test" / "export" / "qlora_r8" / "base"
    info = json.loads((out / "export_info.json").read_text())
    assert info["weight_type"] == "q8_0"
    assert info["agreement"] >= 0.99
    assert (out / "Modelfile").read_text().startswith("FROM ./model.gguf")


def test_chosen_json_says_why_nothing_was_exported(tmp_path):
    from locallm.export.choice import write_choice

    pd.DataFrame(
        {"variant": ["a"], "stage": ["sft"], "metric": ["macro_f1"], "value": [0.4],
         "good_enough": [False]}
    ).to_csv(tmp_path / "metrics.tsv", sep="\t", index=False)  # fmt: skip
    write_choice({"use": "decision"}, tmp_path / "metrics.tsv", tmp_path / "chosen.json")
    record = json.loads((tmp_path / "chosen.json").read_text())
    assert record["folder"] is None and "good enough" in record["reason"]
    write_choice({"use": {"variant": "a", "stage": "sft"}}, tmp_path / "metrics.tsv",
                 tmp_path / "chosen.json", "results/demo/export/{variant}/{stage}")  # fmt: skip
    assert (
        json.loads((tmp_path / "chosen.json").read_text())["folder"] == "results/demo/export/a/sft"
    )
