"""The pre-flight table: size, context, template, licence and GPU fit read from small files."""

import json

import pytest
from conftest import TINY_LLAMA_CONFIG
from locallm.config import with_defaults
from locallm.model.preflight import (
    check_fit,
    format_preflight,
    job_resources,
    longest_tokenized,
    model_facts,
    preflight_table,
)

TINY_CONFIG = {**TINY_LLAMA_CONFIG, "model_type": "llama"}


@pytest.fixture
def saved_model(tmp_path):
    """A model folder with the small files only: config, tokenizer config, model card."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags: [x]\n---\n# A model\n")
    return folder


def test_model_facts_read_size_context_template_and_licence_from_small_files(saved_model):
    facts = model_facts(saved_model)
    assert facts["params"] == facts["shape"].params > 0
    assert facts["context_length"] == 128
    assert facts["chat_template"] is True
    assert facts["licence"] == "apache-2.0"


def test_preflight_flags_a_variant_that_does_not_fit_the_gpu(saved_model):
    config = with_defaults(
        {
            "variants": {"small": {"base": str(saved_model), "max_length": 256}},
            "hpc": {"gpu_memory_gb": 0.5},
        }
    )
    table = preflight_table(config)
    row = table.iloc[0]
    assert row["kind"] == "instruct" and row["licence"] == "apache-2.0"
    assert row["fits"] == False  # noqa: E712 - numpy bool
    assert "max_length 256 > context 128" in row["note"]
    with pytest.raises(ValueError, match="hpc.fit_error"):
        check_fit(table, {**config["hpc"], "fit_error": True})


def test_preflight_says_base_or_instruct_and_the_format_every_stage_uses(saved_model):
    (saved_model / "tokenizer_config.json").write_text("{}")  # no chat template: a base model
    variants = {
        "base": {"base": str(saved_model)},
        "forced": {"base": str(saved_model), "chat_template": "{{ messages }}"},
    }
    table = preflight_table(with_defaults({"variants": variants})).set_index("variant")
    assert table.loc["base", "kind"] == "base" and table.loc["base", "format"] == "completion"
    assert table.loc["forced", "format"] == "chat"
    assert "`completion` as plain text" in format_preflight(table.reset_index())


def test_preflight_of_builtin_tiny_uses_the_config_shape():
    table = preflight_table(with_defaults({}))
    assert table.loc[0, "base"] == "builtin:tiny"
    assert table.loc[0, "fits"] == True  # noqa: E712


def test_job_resources_of_an_unfetched_hub_base_fall_back_to_the_training_settings(monkeypatch):
    monkeypatch.setattr("locallm.model.preflight.cached_base_dir", lambda settings: None)
    config = with_defaults({"variants": {"hub": {"base": "owner/model", "num_processes": 2}}})
    assert job_resources(config, "hub") == {"gpu": 2, "mem_mb": 2 * config["training"]["mem_mb"]}


def test_preflight_names_the_fetch_rule_of_an_unfetched_hub_base(monkeypatch):
    monkeypatch.setattr("locallm.model.preflight.cached_base_dir", lambda settings: None)
    config = with_defaults({"variants": {"hub": {"base": "meta-llama/Llama-2-7b-hf"}}})
    assert "run the fetch_base rule" in preflight_table(config).loc[0, "note"]


def test_job_resources_of_a_saved_model_come_from_the_estimate(saved_model):
    config = with_defaults({"variants": {"small": {"base": str(saved_model)}}})
    resources = job_resources(config, "small")
    assert resources["gpu"] == 1 and resources["gpu_mem_mb"] > 1000  # CUDA overhead alone is 1 GB
    assert job_resources(config, "small", stage="infer")["gpu_mem_mb"] < resources["gpu_mem_mb"]


def test_preflight_sizes_an_architecture_without_a_shape_rule_from_its_meta_count(tmp_path):
    folder = tmp_path / "gpt2"
    folder.mkdir()
    gpt2 = {"model_type": "gpt2", "vocab_size": 300, "n_embd": 64, "n_layer": 2, "n_head": 4}
    (folder / "config.json").write_text(json.dumps({**gpt2, "n_positions": 128}))
    config = with_defaults({"variants": {"gpt2": {"base": str(folder), "max_length": 64}}})
    row = preflight_table(config).iloc[0]
    assert row["params_M"] == 0.1 and row["context"] == 128
    assert row["gpu_mem_GB"] >= 1.0 and row["fits"] == True  # noqa: E712 - never "-"
    assert job_resources(config, "gpt2")["gpu_mem_mb"] > 1000


def test_preflight_names_an_unreadable_base_instead_of_failing(tmp_path):
    (tmp_path / "empty").mkdir()
    config = with_defaults({"variants": {"broken": {"base": str(tmp_path / "empty")}}})
    table = preflight_table(config)
    assert "no config.json" in table.loc[0, "note"]


def test_preflight_shows_the_longest_tokenized_example_from_the_length_report(
    saved_model, tmp_path
):
    report = tmp_path / "lengths.tsv"
    report.write_text("split\texamples\tmax\ttruncated\ntrain\t3\t97\t0\ntest\t2\t120\t0\n")
    config = with_defaults({"variants": {"small": {"base": str(saved_model)}}})
    assert preflight_table(config, {"small": report}).loc[0, "longest_example"] == 120
    assert preflight_table(config).loc[0, "longest_example"] == "-"  # not tokenized yet
    assert longest_tokenized(tmp_path / "absent.tsv") is None


def test_a_length_report_without_its_max_column_is_an_error_naming_it(tmp_path):
    report = tmp_path / "lengths.tsv"
    report.write_text("split\ttokens\ntrain\t97\n")
    with pytest.raises(ValueError, match=r"lengths.tsv: no column 'max' \(it has: split, tokens\)"):
        longest_tokenized(report)


def test_on_a_machine_without_gpus_the_gpu_columns_are_said_to_be_a_cluster_estimate():
    table = preflight_table(with_defaults({}))
    here = format_preflight(table, gpus_here=0)
    assert here.endswith(
        "This machine has no GPU: the jobs run on the CPU. gpus, gpu_mem_GB and fits "
        "estimate a cluster run on GPUs of hpc.gpu_memory_gb, not this run."
    )
    assert "no GPU" not in format_preflight(table, gpus_here=None)  # a cluster run
    assert "no GPU" not in format_preflight(table, gpus_here=1)
