"""Checksums, the environment record, the canonical config and the replication archive's parts."""

import hashlib
import json
import platform
import subprocess
import tarfile
from pathlib import Path

import pytest
from locallm.config import canonical
from locallm.machine import VECTOR_FLAGS
from locallm.report.archive import code_files, data_paths, requirements_lock, write_archive
from locallm.report.provenance import checksums, environment, git_state


def test_canonical_sorts_keys_at_every_level_and_keeps_list_order():
    config = {"b": {"y": 1, "x": [{"q": 1, "p": 2}, 3]}, "a": ["z", "y"]}
    sorted_config = canonical(config)
    assert repr(sorted_config) == "{'a': ['z', 'y'], 'b': {'x': [{'p': 2, 'q': 1}, 3], 'y': 1}}"
    reordered = {"a": ["z", "y"], "b": {"x": [{"p": 2, "q": 1}, 3], "y": 1}}
    assert repr(canonical(reordered)) == repr(sorted_config)


def test_checksums_expand_folders_and_match_hashlib(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "b.bin").write_bytes(b"weights")
    (tmp_path / "model" / ".snakemake_timestamp").write_text("")
    (tmp_path / "a.tsv").write_text("x\n1\n")
    table = checksums({"input": [tmp_path / "a.tsv"], "model": [tmp_path / "model"]})
    assert table.role.tolist() == ["input", "model"]
    assert table.path.tolist() == [f"{tmp_path}/a.tsv", f"{tmp_path}/model/b.bin"]
    assert table.sha256.iloc[1] == hashlib.sha256(b"weights").hexdigest()
    assert table.bytes.tolist() == [4, 7]


def test_checksums_name_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone.parquet"):
        checksums({"split": [tmp_path / "gone.parquet"]})


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "workflow").mkdir(parents=True)
    (repo / "Snakefile").write_text("rule all:\n")
    (repo / "workflow" / "a.smk").write_text("# rules\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    return repo


def test_git_state_reports_commit_and_a_dirty_tree(repo):
    clean = git_state(repo)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (repo / "Snakefile").write_text("rule all:\n    input: []\n")
    dirty = git_state(repo)
    assert dirty["dirty"] is True and dirty["changed_files"] == ["Snakefile"]


def test_git_state_outside_a_repository_says_so(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None, "changed_files": []}


def test_environment_lists_python_packages_and_git(repo):
    env = environment(repo)
    assert env["packages"]["pandas"] == __import__("pandas").__version__
    assert env["git"]["commit"] is not None
    assert {"python", "torch", "cuda", "gpus", "cpu", "os"} <= set(env)


def test_code_files_are_the_tracked_files_without_results(repo):
    (repo / "results").mkdir()
    (repo / "results" / "metrics.tsv").write_text("x\n")
    assert [p.as_posix() for p in code_files(repo)] == ["Snakefile", "workflow/a.smk"]


def test_data_outside_the_working_directory_is_refused():
    with pytest.raises(ValueError, match="/data/corpus.csv"):
        data_paths(["/data/corpus.csv"])


def test_requirements_lock_pins_every_package():
    assert requirements_lock({"torch": "2.13.0+cpu", "pandas": "3.1.1"}) == (
        "pandas==3.1.1\ntorch==2.13.0+cpu\n"
    )


def test_requirements_lock_leaves_out_locallm_which_the_rerun_installs_from_the_archive():
    lock = requirements_lock({"locallm": "0.1.0", "pandas": "3.1.1"})
    assert lock == "pandas==3.1.1\n"


def test_archive_holds_code_replication_files_and_data_and_is_reproducible(
    repo, tmp_path, monkeypatch
):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "corpus.csv").write_text("text\nhello\n")
    (work / "config.yaml").write_text("seed: 1\n")
    (work / "checksums.tsv").write_text("role\tpath\tbytes\tsha256\n")
    env = {"git": git_state(repo), "packages": {"pandas": "3.1.1"}}
    (work / "environment.json").write_text(json.dumps(env))
    monkeypatch.chdir(work)
    args = dict(repo=repo, config_yaml="config.yaml", checksums_tsv="checksums.tsv",
                environment_json="environment.json", data=["data/corpus.csv"])  # fmt: skip
    manifest = write_archive(output="one/a.tar.gz", **args)
    write_archive(output="two/a.tar.gz", **args)
    assert (work / "one/a.tar.gz").read_bytes() == (work / "two/a.tar.gz").read_bytes()
    root = f"locallm-{manifest['commit'][:12]}"
    with tarfile.open(work / "one/a.tar.gz") as tar:
        names = tar.getnames()
        lock = tar.extractfile(f"{root}/replication/requirements.lock").read().decode()
        readme = tar.extractfile(f"{root}/replication/README.md").read().decode()
    assert f"{root}/Snakefile" in names and f"{root}/workflow/a.smk" in names
    assert f"{root}/data/corpus.csv" in names
    for name in ("config.yaml", "checksums.tsv", "environment.json", "manifest.json", "README.md"):
        assert f"{root}/replication/{name}" in names
    assert lock == "pandas==3.1.1\n"
    # torch's +cpu pins install only from PyTorch's index; a bare --configfile swallows targets.
    assert "pip install --extra-index-url https://download.pytorch.org/whl/cpu -r" in readme
    assert "--configfile=replication/config.yaml" in readme
    assert manifest["dirty"] is False and manifest["data_files"] == ["data/corpus.csv"]


def test_git_state_of_an_unpacked_archive_is_the_commit_its_manifest_names(tmp_path):
    (tmp_path / "replication").mkdir()
    manifest = {"commit": "a" * 40, "dirty": False, "code_files": 3, "data_files": []}
    (tmp_path / "replication" / "manifest.json").write_text(json.dumps(manifest))
    state = git_state(tmp_path)
    assert state["commit"] == "a" * 40 and state["dirty"] is False
    assert state["source"].startswith("replication/manifest.json")


def test_environment_records_cpu_vector_flags_memory_and_torch_kernels(repo):
    env = environment(repo)
    assert isinstance(env["cpu_flags"], list) and set(env["cpu_flags"]) <= set(VECTOR_FLAGS)
    if Path("/proc/cpuinfo").exists() and platform.machine() == "x86_64":
        assert "sse4_2" in env["cpu_flags"]  # every x86-64 CPU torch's wheels run on has it
    assert env["memory_gb"] > 0
    assert env["torch_cpu_capability"] in ("DEFAULT", "VSX", "ZVECTOR", "AVX2", "AVX512", "SVE256")
