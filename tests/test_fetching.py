"""Fetching bases on the login node (no network here): what is downloaded, and going offline."""

import json
import os

import pytest
from locallm.model.fetching import fetch_arguments, fetch_base, go_offline


def no_download(*args, **kwargs):
    raise AssertionError("no download expected")


@pytest.fixture
def saved_model(tmp_path):
    """A model folder (fetching only checks that it is one)."""
    folder = tmp_path / "model"
    folder.mkdir()
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
