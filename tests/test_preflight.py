"""Fetching bases on the login node (no network here) and the pre-flight table."""

import json
import os

import pytest
from locallm.config import with_defaults
from locallm.preflight import (
    check_fit,
    fetch_arguments,
    fetch_base,
    go_offline,
    job_resources,
    model_facts,
    preflight_table,
)

TINY_CONFIG = {
    "model_type": "llama",
    "vocab_size": 300,
    "hidden_size": 64,
    "intermediate_size": 160,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 128,
}


def no_download(*args, **kwargs):
    raise AssertionError("no download expected")


@pytest.fixture
def saved_model(tmp_path):
    """A model folder with the small files only: config, tokenizer config, model card."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags: [x]\n---\n# A model\n")
    return folder


def test_fetch_base_is_a_no_op_for_builtin_tiny(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.snapshot_download", no_download)
    record = fetch_base({"base": "builtin:tiny"}, tmp_path / "fetched.json")
    assert record["kind"] == "builtin"
    assert json.loads((tmp_path / "fetched.json").read_text())["path"] is None


def test_fetch_base_records_a_local_folder_without_downloading(saved_model, tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.snapshot_download", no_download)
    record = fetch_base({"base": str(saved_model)}, tmp_path / "fetched.json")
    assert record["kind"] == "local"
    assert record["path"] == str(saved_model.resolve())


def test_fetch_base_downloads_a_hub_id_with_revision_cache_and_safe_patterns(tmp_path, monkeypatch):
    calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(
        "huggingface_hub.snapshot_download", lambda **kw: calls.append(kw) or "/cache/snap"
    )
    settings = {"base": "owner/model", "revision": "abc123", "cache_dir": str(tmp_path / "hf")}
    record = fetch_base(settings, tmp_path / "fetched.json")
    assert calls == [fetch_arguments(settings)]
    assert calls[0]["repo_id"] == "owner/model" and calls[0]["revision"] == "abc123"
    assert calls[0]["cache_dir"] == str(tmp_path / "hf")
    assert "*.safetensors" in calls[0]["allow_patterns"]
    assert not any(p.endswith((".bin", ".pt", ".pth")) for p in calls[0]["allow_patterns"])
    assert record["path"] == "/cache/snap"


def test_fetch_base_rejects_a_missing_folder_that_is_no_hub_id(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hub id"):
        fetch_base({"base": "./no/such/folder"}, tmp_path / "fetched.json")


def test_go_offline_sets_both_hugging_face_variables(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    go_offline()
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["HF_DATASETS_OFFLINE"] == "1"


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


def test_preflight_of_builtin_tiny_uses_the_config_shape():
    table = preflight_table(with_defaults({}))
    assert table.loc[0, "base"] == "builtin:tiny"
    assert table.loc[0, "fits"] == True  # noqa: E712


def test_job_resources_of_an_unfetched_hub_base_fall_back_to_the_training_settings(monkeypatch):
    monkeypatch.setattr("locallm.preflight.cached_base_dir", lambda settings: None)
    config = with_defaults({"variants": {"hub": {"base": "owner/model", "num_processes": 2}}})
    assert job_resources(config, "hub") == {"gpu": 2, "mem_mb": 2 * config["training"]["mem_mb"]}


def test_preflight_names_the_fetch_rule_of_an_unfetched_hub_base(monkeypatch):
    monkeypatch.setattr("locallm.preflight.cached_base_dir", lambda settings: None)
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
