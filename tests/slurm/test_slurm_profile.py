"""The SLURM profile against a real SLURM cluster (CI starts a one-node one with .ci/slurm-up.sh).

The data half of config/test.yaml runs through profiles/slurm (sizes shrunk to the test node), and
the test asserts that every non-local job went through SLURM, in the partition the profile maps its
rule to, finished COMPLETED, and that the outputs equal a local run's.
"""

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake

TARGET = "results/splits/split_report.tsv"
TIMEOUT_S = 1200

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
    profile["set-resources"] = {
        rule: {**resources, "cpus_per_gpu": 1} if "gpu" in resources else resources
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


def planned_jobs(workdir: Path) -> Counter:
    """Jobs per rule that a dry-run of TARGET plans in a fresh copy."""
    # --cores before the target: conftest's helper ends with --configfile, which takes many values.
    result = snakemake(workdir, "-n", "--quiet", "rules", "--cores", "2", TARGET)
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


def assert_same_outputs(local: Path, cluster: Path) -> None:
    """Every file under results/ is equal: Parquet by content, the rest byte for byte."""
    local_files = sorted(
        p.relative_to(local) for p in (local / "results").rglob("*") if p.is_file()
    )
    cluster_files = sorted(
        p.relative_to(cluster) for p in (cluster / "results").rglob("*") if p.is_file()
    )
    assert cluster_files == local_files
    for path in local_files:
        if path.suffix == ".parquet":
            pd.testing.assert_frame_equal(
                pd.read_parquet(cluster / path), pd.read_parquet(local / path)
            )
        elif path.suffix not in NOT_BYTE_STABLE:
            assert (cluster / path).read_bytes() == (local / path).read_bytes(), path


def test_data_half_runs_through_slurm_in_the_mapped_partitions(test_workflow, tmp_path):
    problem = cluster_is_up()
    if problem is not None:
        pytest.fail(
            f"sinfo is installed but no idle node in partitions cpu and gpu (sinfo: {problem}); "
            "start the test cluster with `sudo bash .ci/slurm-up.sh`"
        )
    snakemake(
        test_workflow, "--cores", "2", TARGET
    )  # the local reference (shared with the other workflow tests)

    workdir = copy_workflow(tmp_path / "slurm")
    planned = planned_jobs(workdir)
    assert planned.get("split") == 1, planned
    profile = resized_profile(yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text()))
    (workdir / "profiles/test-slurm").mkdir()
    (workdir / "profiles/test-slurm/config.yaml").write_text(yaml.safe_dump(profile))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "profiles/test-slurm",
            "--configfile",
            "config/test.yaml",
            "--cores",
            "2",
            TARGET,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stderr[-8000:]

    jobs = slurm_jobs(workdir)
    remote = {rule: n for rule, n in planned.items() if rule not in local_rules(workdir)}
    assert Counter(job["rule"] for job in jobs) == remote
    for job in jobs:
        assert job["state"] == "COMPLETED", job
        assert job["partition"] == expected_partition(profile, job["rule"]), job
    assert_same_outputs(test_workflow, workdir)
