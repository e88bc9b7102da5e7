"""The model half as a user runs it: snakemake on config/test.yaml, real 4-bit QLoRA on the CPU."""

import json

import pandas as pd
from conftest import ROOT, snakemake
from locallm.config import load_config, tokenization_id

VARIANT = "qlora_r8"
TOKENIZED = (
    f"results/test/tokenized/{tokenization_id(load_config(ROOT / 'config/test.yaml'), VARIANT)}"
)
TARGETS = [
    f"{TOKENIZED}/lengths.tsv",
    f"results/test/models/{VARIANT}/sft",
    f"results/test/models/{VARIANT}/dpo",
]


def test_model_half_trains_aligns_and_saves_adapters(test_workflow):
    snakemake(test_workflow, *TARGETS)
    models = test_workflow / "results/test/models"

    sft_info = json.loads((models / VARIANT / "sft" / "run_info.json").read_text())
    assert sft_info["linear_4bit_layers"] > 0  # QLoRA really ran in 4-bit
    assert sft_info["method"] == "qlora"
    sft_log = pd.read_csv(models / VARIANT / "sft" / "train_log.tsv", sep="\t")
    assert sft_log.loss.iloc[-1] < sft_log.loss.iloc[0]

    for stage in ("sft", "dpo"):
        folder = models / VARIANT / stage
        assert (folder / "adapter_model.safetensors").exists()
        assert (folder / "adapter_config.json").exists()
        assert (folder / "tokenizer_config.json").exists()
        assert (folder / "loss.png").exists()

    dpo_log = pd.read_csv(models / VARIANT / "dpo" / "train_log.tsv", sep="\t")
    assert dpo_log.reward_accuracy.iloc[-1] > 0.5
    assert dpo_log.reward_margin.iloc[-1] > 0

    tokenized = test_workflow / TOKENIZED
    report = pd.read_csv(tokenized / "lengths.tsv", sep="\t")
    assert report.split.tolist() == ["train", "validation"]
    assert (report.context_length == 512).all()

    # Checkpoints live outside the declared outputs, so a failed job leaves them for the rerun.
    assert any((test_workflow / "results/test/checkpoints" / VARIANT / "sft").glob("checkpoint-*"))


def test_model_half_is_up_to_date_after_a_run(test_workflow):
    snakemake(test_workflow, *TARGETS)
    result = snakemake(test_workflow, "-n", *TARGETS)
    assert "Nothing to be done" in result.stdout + result.stderr
