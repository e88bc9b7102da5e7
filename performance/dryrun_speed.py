"""Dry-run (DAG planning) time: `snakemake -n` on config/test.yaml, and at 100, 300, 1,000 shards.

    python performance/dryrun_speed.py --baseline main       # --sizes 100 300 1000 --repeats 3

First `snakemake -n --configfile config/test.yaml` (the CI config, as shipped; target: at most
3 s). Then, for each size, it writes a corpus of one small CSV file per shard and a config with 4
variants (the rest from config/test.yaml), then times `snakemake -n` in a fresh copy of the
workflow: the median wall time of `--repeats` runs. With `--baseline REF` the same is timed on the
workflow of that git commit, side by side; the machine's load is printed before and after.
Planning should grow linearly: seconds per 1,000 jobs should stay flat as the DAG grows, and the
growth in seconds should stay at or under the growth in jobs (the linear bound).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ["Snakefile", "config", "workflow", "envs", "profiles"]
VARIANTS = {
    f"qlora_r{r}": {"method": "qlora", "lora_r": r, "lora_alpha": 2 * r} for r in (4, 8, 16, 32)
}


def copy_current(dest: Path) -> None:
    """The working tree's workflow files (not results) into `dest`."""
    dest.mkdir(parents=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)


def copy_commit(ref: str, dest: Path) -> None:
    """The workflow files of git commit `ref` into `dest`."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, *WORKFLOW_FILES], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def write_corpus(work: Path, shards: int) -> Path:
    """One two-row CSV per shard, and a config that ingests them into `shards` shards."""
    corpus = work / "corpus"
    corpus.mkdir()
    for i in range(shards):
        (corpus / f"doc{i:04d}.csv").write_text(
            "text,party,year\n"
            f'"Passage {i} one.",Democratic,{1900 + i % 100}\n'
            f'"Passage {i} two.",Republican,{1900 + i % 100}\n'
        )
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config["corpus"] = {
        "source": "files",
        "paths": [str(corpus / "*.csv")],
        "metadata_columns": ["year", "party"],
        "shards": shards,
    }
    config["variants"] = VARIANTS
    # Named after the file (config_N): a baseline from before results per config has no `name` key.
    config.pop("name", None)
    path = work / f"config_{shards}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_dry_run(workflow: Path, config: Path, repeats: int) -> tuple[float, float, int]:
    """Median wall and CPU seconds of `snakemake -n` in `workflow`, and the jobs it planned."""
    seconds, cpu_seconds, jobs = [], [], None
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), child_cpu_seconds()
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", "--cores", "2", f"--configfile={config}"],
            cwd=workflow,
            capture_output=True,
            text=True,
            # Each workflow plans with its own library: a baseline commit's locallm differs from
            # the installed one, which the workflow would refuse (locallm.installed).
            env={**os.environ, "PYTHONPATH": str(workflow / "workflow" / "scripts")},
        )
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(child_cpu_seconds() - cpu_start)
        if result.returncode != 0:
            raise RuntimeError(f"snakemake -n failed in {workflow}:\n{result.stderr[-3000:]}")
        total = re.search(r"^total\s+(\d+)", result.stdout + result.stderr, re.MULTILINE)
        jobs = int(total.group(1)) if total else 0
    return statistics.median(seconds), statistics.median(cpu_seconds), jobs


def measure_test_config(workflows: dict[str, Path], repeats: int, work: Path) -> list[dict]:
    """One row per workflow: `snakemake -n` on its own config/test.yaml."""
    rows = []
    for name, folder in workflows.items():
        run_dir = work / f"run_{name.split()[0]}_test"
        shutil.copytree(folder, run_dir)
        wall, cpu, jobs = time_dry_run(run_dir, Path("config/test.yaml"), repeats)
        rows.append({"workflow": name, "jobs": jobs, "wall": wall, "cpu": cpu})
    return rows


def workflow_copies(baseline: str | None, work: Path) -> dict[str, Path]:
    """The current workflow, and the baseline commit's when given, copied under `work`."""
    workflows = {"current": work / "current"}
    copy_current(workflows["current"])
    if baseline:
        workflows[f"baseline {baseline}"] = work / "baseline"
        copy_commit(baseline, workflows[f"baseline {baseline}"])
    return workflows


def measure(sizes: list[int], repeats: int, workflows: dict[str, Path], work: Path) -> list[dict]:
    """One row per size and workflow (current, and the baseline commit when given)."""
    rows = []
    for shards in sizes:
        corpus_dir = work / f"corpus_{shards}"
        corpus_dir.mkdir()
        config = write_corpus(corpus_dir, shards)
        for name, folder in workflows.items():
            # A fresh copy per size: no .snakemake metadata from another DAG.
            run_dir = work / f"run_{name.split()[0]}_{shards}"
            shutil.copytree(folder, run_dir)
            wall, cpu, jobs = time_dry_run(run_dir, config, repeats)
            rows.append(
                {"workflow": name, "shards": shards, "jobs": jobs, "wall": wall, "cpu": cpu}
            )
    return rows


def format_test_table(rows: list[dict]) -> str:
    """Markdown: config/test.yaml's dry-run per workflow, wall and CPU, beside the 3 s target."""
    current = next(r for r in rows if r["workflow"] == "current")
    lines = [
        "| workflow (config/test.yaml) | jobs | wall s | CPU s | target wall s "
        "| speed-up of current (wall) | speed-up of current (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        wall_up = "" if r is current else f"{r['wall'] / current['wall']:.2f}×"
        cpu_up = "" if r is current else f"{r['cpu'] / current['cpu']:.2f}×"
        lines.append(
            f"| {r['workflow']} | {r['jobs']} | {r['wall']:.1f} | {r['cpu']:.1f} | ≤ 3 "
            f"| {wall_up} | {cpu_up} |"
        )
    return "\n".join(lines)


def load() -> str:
    """The machine's load average (1, 5, 15 minutes) and its cores, for the table's context."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} cores"


def format_table(rows: list[dict]) -> str:
    """Markdown: wall and CPU seconds, CPU s per 1,000 jobs, growth against the smallest size
    beside its linear bound (the growth in jobs), and the current workflow's speed-up over the
    baseline.
    """
    lines = [
        "| workflow | shards | jobs | wall s | CPU s | CPU s per 1,000 jobs "
        "| growth in CPU s | growth in jobs (linear bound) | speed-up of current (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    first = {}
    current = {r["shards"]: r["cpu"] for r in rows if r["workflow"] == "current"}
    for r in rows:
        base = first.setdefault(r["workflow"], r)
        speed_up = "" if r["workflow"] == "current" else f"{r['cpu'] / current[r['shards']]:.2f}×"
        lines.append(
            f"| {r['workflow']} | {r['shards']:,} | {r['jobs']:,} "
            f"| {r['wall']:.1f} | {r['cpu']:.1f} "
            f"| {1000 * r['cpu'] / max(r['jobs'], 1):.2f} | {r['cpu'] / base['cpu']:.2f}× "
            f"| {r['jobs'] / max(base['jobs'], 1):.2f}× | {speed_up} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="a git commit to time side by side")
    args = parser.parse_args(argv)
    if max(args.sizes) > 1000:
        parser.error("--sizes: at most 1000 (shard names have three digits)")
    print(f"before: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        workflows = workflow_copies(args.baseline, Path(tmp))
        test_rows = measure_test_config(workflows, args.repeats, Path(tmp))
        rows = measure(args.sizes, args.repeats, workflows, Path(tmp))
    print(format_test_table(test_rows))
    print()
    print(format_table(rows))
    print(f"after: {load()}")
    return test_rows + rows


if __name__ == "__main__":
    main()
