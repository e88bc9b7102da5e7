"""Model cards from a stage's run_info.json and metrics.tsv, without Snakemake."""

import json

import pandas as pd
import yaml
from locallm.report.cards import model_card_markdown
from locallm.report.run_files import Run

CONFIG = {
    "corpus": {"source": "files"},
    "task": {"label_column": "frame", "labels": ["economic", "moral"], "prompt": "Frame?\n{text}"},
}


def stage_run(tmp_path, method: str, base: str = "org/model") -> Run:
    folder = tmp_path / "models" / "v" / "sft"
    folder.mkdir(parents=True)
    info = {"method": method, "base": base, "base_path": "org/model", "steps": 3,
            "seed": 1, "settings": {"learning_rate": 0.001, "lora_r": 8}}  # fmt: skip
    (folder / "run_info.json").write_text(json.dumps(info))
    metrics = pd.DataFrame(
        {"variant": ["v", "v", "v", "baseline"], "stage": ["sft", "sft", "base", "majority"],
         "metric": ["accuracy", "perplexity", "accuracy", "accuracy"],
         "value": [0.81234, 12.0, 0.5, 0.6], "ci_low": [0.7, 11.0, 0.4, 0.5],
         "ci_high": [0.9, 13.0, 0.6, 0.7], "n": [100, 50, 100, 100]}
    )  # fmt: skip
    metrics.to_csv(tmp_path / "metrics.tsv", sep="\t", index=False)
    paths = dict.fromkeys(["ingest_report", "filter_report", "split_report", "cluster_summary",
                           "duplicates", "split_rejects"], "unused")  # fmt: skip
    return Run(config=CONFIG, raw_files=["data/a.csv"], splits={}, lengths={},
               models={("v", "sft"): str(folder)}, predictions={},
               metrics=str(tmp_path / "metrics.tsv"), **paths)  # fmt: skip


def header(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_adapter_card_has_hub_header_with_this_stages_test_metrics_only(tmp_path):
    card = model_card_markdown(stage_run(tmp_path, "qlora"), "v", "sft")
    meta = header(card)
    assert meta["base_model"] == "org/model" and meta["library_name"] == "peft"
    assert meta["license"] == "other"  # the base's card is not on this machine
    assert meta["datasets"] == ["local: data/a.csv"]
    (result,) = meta["model-index"][0]["results"]
    assert result["metrics"] == [{"type": "accuracy", "value": 0.8123}]  # not perplexity
    assert "| v | sft | accuracy | 0.812 [0.700, 0.900] | 100 |" in card
    assert "| v | base |" not in card
    assert "| learning_rate | 0.001 |" in card and "[More Information Needed]" not in card


def test_full_fine_tuning_card_names_transformers(tmp_path):
    meta = header(model_card_markdown(stage_run(tmp_path, "full"), "v", "sft"))
    assert meta["library_name"] == "transformers"
    assert "language" not in meta  # only the demo corpus is known to be English


def test_a_card_on_gemma_records_its_licence_and_the_terms_derivatives_carry(tmp_path):
    card = model_card_markdown(stage_run(tmp_path, "qlora", "builtin:gemma-3-270m"), "v", "sft")
    assert header(card)["license"] == "gemma"
    assert "## Licence of the base: gemma" in card
    assert "https://ai.google.dev/gemma/terms" in card
    assert "## Licence of the base" not in model_card_markdown(
        stage_run(tmp_path / "smol", "qlora", "builtin:smollm2-135m-instruct"), "v", "sft"
    )


def test_full_fine_tuning_card_lists_no_lora_settings(tmp_path):
    card = model_card_markdown(stage_run(tmp_path, "full"), "v", "sft")
    assert "| learning_rate | 0.001 |" in card and "lora_r" not in card
    assert "| lora_r | 8 |" in model_card_markdown(stage_run(tmp_path / "q", "qlora"), "v", "sft")


def test_other_licence_carries_a_name_and_the_toy_says_it_was_built_here(tmp_path):
    meta = header(model_card_markdown(stage_run(tmp_path, "qlora"), "v", "sft"))
    assert meta["license"] == "other" and meta["license_name"]
    run = stage_run(tmp_path / "tiny", "full")
    info_file = run.models["v", "sft"] + "/run_info.json"
    info = json.loads(open(info_file).read())
    info["base"] = "builtin:tiny"
    open(info_file, "w").write(json.dumps(info))
    assert header(model_card_markdown(run, "v", "sft"))["license_name"] == "locallm-bootstrapped"


def test_card_states_training_set_size_and_a_gguf_base_dequantized(tmp_path):
    run = stage_run(tmp_path, "qlora")
    base = tmp_path / "converted"
    base.mkdir()
    conversion = {"source": "resources/builtin/smollm2.gguf", "quantization": "Q4_1",
                  "dtype": "float32"}  # fmt: skip
    (base / "conversion_info.json").write_text(json.dumps(conversion))
    info_file = run.models["v", "sft"] + "/run_info.json"
    info = json.loads(open(info_file).read())
    info.update(base_path=str(base), train_examples=120, train_sequences=30, packing=True)
    open(info_file, "w").write(json.dumps(info))
    card = model_card_markdown(run, "v", "sft")
    assert "for 3 steps on 120 training examples packed into 30 sequences (seed 1)." in card
    assert "from the GGUF file `smollm2.gguf`: its Q4_1 weights dequantized to float32" in card
    info.pop("train_examples")
    info["preference_pairs"] = 64
    open(info_file, "w").write(json.dumps(info))
    assert "for 3 steps on 64 preference pairs" in model_card_markdown(run, "v", "sft")
