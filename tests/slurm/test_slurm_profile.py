"""The SLURM profile against a real SLURM cluster (CI starts a one-node one with .ci/slurm-up.sh).

config/test.yaml, with the tiny model trained for a few steps only, runs through profiles/slurm
(sizes shrunk to the test node) up to the splits and the first variant's SFT adapter: the data
rules, and bootstrap_base and sft, which the profile sends to the GPU partition (the test node has
one fake GPU). The test asserts that every non-local job went through SLURM, in the partition the
profile maps its rule to, finished COMPLETED, that the training script saw the same SLURM job and
partition, and that the outputs equal those of a local run of the same config.
"""

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow
from locallm.config import load_config

VARIANT = next(iter(load_config(ROOT / "config/test.yaml")["variants"]))
# The whole test DAG: the data half, training, alignment, inference and evaluation.
RESULTS = f"results/{load_config(ROOT / 'config/test.yaml')['name']}"
TARGETS = [
    f"{RESULTS}/splits/split_report.tsv",
    f"{RESULTS}/models/{VARIANT}/sft",
    f"{RESULTS}/models/{VARIANT}/dpo",
    f"{RESULTS}/eval/metrics.tsv",
]
# A few training steps: the test is about where jobs run, not what the model learns.
QUICK_MODEL = {
    "model": {"tiny": {"pretrain_steps": 3}},
    "training": {
        "max_steps": 2,
        "dpo_max_steps": 2,
        "save_steps": 1,
        "logging_steps": 1,
        "threads": 2,
        "mem_mb": 2000,
    },
    "evaluation": {"bootstrap": 50, "perplexity_max_texts": 8},
}
CONFIGS = ["config/test.yaml", "config/quick-model.yaml"]
TIMEOUT_S = 1800
# Values that differ between any two runs (timings, where it ran), left out of the comparison.
RUN_SPECIFIC_KEYS = {
    "wall_time_s",
    "train_runtime_s",
    "tokens_per_s",
    "peak_rss_mb",
    "cpu_time_s",
    "tokens_per_cpu_s",
    "peak_gpu_mb",
    "slurm_job_id",
    "slurm_job_partition",
    # transformers records HF_HUB_OFFLINE (set in cluster jobs by hpc.smk) in tokenizer_config.json.
    "local_files_only",
}

pytestmark = pytest.mark.skipif(
    shutil.which("sinfo") is None,
    reason="SLURM is not installed here (no sinfo); CI installs it with .ci/slurm-up.sh",
)


def cluster_is_up() -> str | None:
    """None when sinfo lists an idle node in partitions cpu and gpu, else what sinfo said."""
    result = subprocess.run(["sinfo", "-h", "-o", "%P %T"], capture_output=True, text=True)
    states = result.stdout.split("\n") if result.returncode == 0 else []
    partitions = {line.split()[0].rstrip("*") for line in states if " idle" in line}
    if {"cpu", "gpu"} <= partitions:
        return None
    return (result.stdout + result.stderr).strip() or "nothing"


def resized_profile(profile: dict) -> dict:
    """The real profile, resized for a 2-core test node and made quick to poll."""
    profile = {**profile}
    profile.update(
        {
            "jobs": 4,
            "latency-wait": 5,
            "retries": 0,
            "keep-going": False,
            "slurm-no-account": True,
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 3,
        }
    )
    profile["default-resources"] = {**profile["default-resources"], "mem_mb": 2000}
    # Two cores per GPU job: the node's two, as in the local run (same torch threads, same numbers).
    profile["set-resources"] = {
        rule: {**resources, "cpus_per_gpu": 2} if "cpus_per_gpu" in resources else resources
        for rule, resources in profile["set-resources"].items()
    }
    return profile


def expected_partition(profile: dict, rule: str) -> str:
    """The partition the profile sends `rule` to."""
    specific = profile.get("set-resources", {}).get(rule, {})
    return specific.get("slurm_partition", profile["default-resources"]["slurm_partition"])


def local_rules(workdir: Path) -> set[str]:
    """Rules declared `localrule: True` (they run in the Snakemake process, not in SLURM)."""
    names = set()
    for smk in (workdir / "workflow" / "rules").glob("*.smk"):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            match = re.match(r"rule (\w+):", block)
            if match and re.search(r"^\s+localrule:\s*True", block, re.M):
                names.add(match.group(1))
    return names


def prepare(workdir: Path) -> Path:
    """A copy of the workflow with the quick-model config beside config/test.yaml."""
    copy_workflow(workdir)
    (workdir / CONFIGS[1]).write_text(yaml.safe_dump(QUICK_MODEL))
    return workdir


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake on CONFIGS and TARGETS in `workdir`; on failure, its output and the job logs."""
    command = [sys.executable, "-m", "snakemake", *args, "--configfile", *CONFIGS, "--"]
    result = subprocess.run(
        [*command, *TARGETS], cwd=workdir, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-2000:]}"
            for p in sorted(workdir.glob("logs/**/*.log"))
            + sorted(workdir.glob(".snakemake/slurm_logs/**/*.log"))
        )
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stderr[-6000:]}\n{logs[-12000:]}")
    return result


def planned_jobs(workdir: Path) -> Counter:
    """Jobs per rule that a dry-run plans in a fresh copy."""
    result = run_snakemake(workdir, "-n", "--quiet", "rules", "--cores", "2")
    counts = Counter()
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


def slurm_jobs(workdir: Path) -> list[dict]:
    """(rule, job id, partition, state) of every SLURM job the run left a log for."""
    jobs = []
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")):
        rule = next(p for p in log.relative_to(workdir).parts if p.startswith("rule_"))[5:]
        jobs.append({"rule": rule, "job_id": log.stem})
    if not jobs:
        return jobs
    ids = ",".join(job["job_id"] for job in jobs)
    result = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", ids, "-o", "%i %P %T"],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    for job in jobs:
        job["partition"], job["state"] = seen.get(job["job_id"], ["?", "not in squeue"])
    return jobs


# Pickles of fitted scikit-learn models hold sets (e.g. TfidfVectorizer.stop_words_) whose order
# follows Python's per-process string hashing; the tables computed from them are compared instead.
NOT_BYTE_STABLE = {".pkl"}


# Training checkpoints are not outputs: they hold optimizer and RNG states and timings for resume.
NOT_COMPARED = (f"{RESULTS}/checkpoints",)


def without_run_specific(path: Path) -> dict:
    """A JSON file's content without the values that differ between any two runs."""
    content = json.loads(path.read_text())
    if isinstance(content.get("target_modules"), list):
        # PEFT saves its set of module names in the process's (hash-seeded) set order.
        content["target_modules"] = sorted(content["target_modules"])
    return {k: v for k, v in content.items() if k not in RUN_SPECIFIC_KEYS}


def assert_same_outputs(local: Path, cluster: Path) -> None:
    """Every file under results/ is equal: Parquet by content, the rest byte for byte."""
    local_files, cluster_files = (
        sorted(
            p.relative_to(root)
            for p in (root / "results").rglob("*")
            if p.is_file() and not str(p.relative_to(root)).startswith(NOT_COMPARED)
        )
        for root in (local, cluster)
    )
    assert cluster_files == local_files
    for path in local_files:
        if path.suffix == ".parquet":
            pd.testing.assert_frame_equal(
                pd.read_parquet(cluster / path), pd.read_parquet(local / path)
            )
        elif path.suffix == ".json":
            assert without_run_specific(cluster / path) == without_run_specific(local / path), path
        elif path.suffix not in NOT_BYTE_STABLE:
            assert (cluster / path).read_bytes() == (local / path).read_bytes(), path


def test_data_and_training_jobs_run_through_slurm_in_the_mapped_partitions(tmp_path):
    problem = cluster_is_up()
    if problem is not None:
        pytest.fail(
            f"sinfo is installed but no idle node in partitions cpu and gpu (sinfo: {problem}); "
            "start the test cluster with `sudo bash .ci/slurm-up.sh`"
        )
    local = prepare(tmp_path / "local")
    run_snakemake(local, "--cores", "2")

    workdir = prepare(tmp_path / "slurm")
    planned = planned_jobs(workdir)
    for rule in ("split", "bootstrap_base", "sft", "dpo", "evaluate"):
        assert planned[rule] == 1, (rule, planned)
    assert planned["infer"] >= 3
    profile = resized_profile(yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text()))
    (workdir / "profiles/test-slurm").mkdir()
    (workdir / "profiles/test-slurm/config.yaml").write_text(yaml.safe_dump(profile))
    run_snakemake(workdir, "--profile", "profiles/test-slurm", "--cores", "2")

    jobs = slurm_jobs(workdir)
    remote = {rule: n for rule, n in planned.items() if rule not in local_rules(workdir)}
    assert Counter(job["rule"] for job in jobs) == remote
    for job in jobs:
        assert job["state"] == "COMPLETED", job
        assert job["partition"] == expected_partition(profile, job["rule"]), job
    for rule in ("bootstrap_base", "sft", "dpo", "infer", "perplexity"):
        assert expected_partition(profile, rule) == "gpu", rule
    assert expected_partition(profile, "filter") == "cpu"
    # The training script itself saw the SLURM job and the GPU partition.
    run_info = json.loads((workdir / TARGETS[1] / "run_info.json").read_text())
    sft_job = next(job for job in jobs if job["rule"] == "sft")
    assert (run_info["slurm_job_id"], run_info["slurm_job_partition"]) == (sft_job["job_id"], "gpu")
    assert "slurm_job_id" not in json.loads((local / TARGETS[1] / "run_info.json").read_text())
    # Cluster jobs ran offline (hpc.offline), the local run did not: transformers saved the setting.
    tokenizer_config = "tokenizer_config.json"
    assert json.loads((workdir / TARGETS[1] / tokenizer_config).read_text())["local_files_only"]
    assert not json.loads((local / TARGETS[1] / tokenizer_config).read_text())["local_files_only"]
    assert_same_outputs(local, workdir)
