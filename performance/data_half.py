"""Wall time, CPU time and every job's peak memory of the data half, and the plan for a big corpus.

Usage (from the repository root; corpora from performance/data_corpus.py):

    python performance/data_half.py run --corpus scratch/corpus100 --workdir scratch/run100 \
        [--shards 8] [--cores 2] [--baseline /path/to/an/earlier/checkout]
    python performance/data_half.py plan --mb 10000 --workdir scratch/plan10g [--shards 80]

`run` runs ingest → clusters → MinHash dedup → filters → splits (the data targets only) with
Snakemake in `--workdir`, polling every job process for its peak resident memory (VmHWM, the
kernel's high-water mark, so a peak between two polls is not missed while the process lives) and
prints one
line per job, the largest peak per rule beside the benchmark files' sampled max_rss, the wall time
and the CPU seconds of all jobs. `plan` makes a corpus of empty (sparse) files of the given size and
prints, from a dry run, the jobs per rule and the mem_mb each asks of a scheduler such as SLURM.
With `--baseline` (a checkout of an earlier commit, e.g. `git worktree add /tmp/base <commit>`), the
same corpus runs through that workflow first, in its own work folder, and the ratios are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "performance"))

from data_corpus import corpus_config  # noqa: E402

# Under the run's results folder: results/NAME/ (config `name`), or results/ in a checkout from
# before outputs were kept per config (a --baseline).
DATA_TARGETS = [
    "corpus/ingest_report.tsv",
    "clusters/summary.tsv",
    "filtered/filter_report.tsv",
    "splits/train.parquet",
    "splits/validation.parquet",
    "splits/test.parquet",
]
SCRIPT = re.compile(r"\.snakemake/scripts/tmp[^.]*\.(?P<name>\w+)\.py$")


def write_config(workdir: Path, corpus: dict, shards: int, workflow: Path = ROOT) -> Path:
    """The workflow's demo config with the generated corpus, sharded, and a task on its party
    column."""
    config = yaml.safe_load((workflow / "config" / "config.yaml").read_text())
    config["corpus"] = {**corpus, "chunk_chars": 1200, "shards": shards}
    config["cluster"].update(share_by="year", share_bin=10)
    config["split"]["stratify_by"] = "party"
    config["task"].update(
        label_column="party",
        labels=["Democratic", "Republican"],
        prompt="Which party does the president who said this belong to?\n\n{text}",
    )
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_command(
    workflow: Path, workdir: Path, config: Path, cores: int, *extra: str
) -> list[str]:
    results = run_folder(config, "results")
    return [
        sys.executable,
        "-m",
        "snakemake",
        *(f"{results}/{target}" for target in DATA_TARGETS),
        "--snakefile",
        str(workflow / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        str(cores),
        *extra,
    ]


def run_folder(config: Path, kind: str) -> str:
    """`results` or `benchmarks` of the run: kind/NAME when the config names the run."""
    name = yaml.safe_load(config.read_text()).get("name")
    return f"{kind}/{name}" if name else kind


def peak_kb(pid: int) -> int:
    """The process's peak resident memory so far (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def job_name(cmdline: list[str]) -> str | None:
    """The rule script a job process runs (.snakemake/scripts/tmpX.NAME.py)."""
    for part in cmdline:
        found = SCRIPT.search(part)
        if found:
            return found["name"]
    return None


def watch(
    command: list[str], log: Path, env: dict, poll: float = 0.2
) -> tuple[int, float, float, list[dict]]:
    """Run `command`; return its exit code, wall s, CPU s (with its jobs) and each job's peak."""
    jobs: dict[int, dict] = {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w") as out:
        process = psutil.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        scheduler = {"job": "snakemake (scheduler)", "pid": process.pid, "peak_kb": 0}
        while process.poll() is None:
            try:
                scheduler["peak_kb"] = max(scheduler["peak_kb"], peak_kb(process.pid))
                children = process.children(recursive=True)
            except (psutil.NoSuchProcess, FileNotFoundError):
                break
            for child in children:
                try:
                    name = job_name(child.cmdline())
                    if name is None:
                        continue
                    peak = peak_kb(child.pid)
                except (psutil.NoSuchProcess, psutil.ZombieProcess, FileNotFoundError):
                    continue
                now = time.perf_counter() - start
                job = jobs.setdefault(child.pid, {"job": name, "pid": child.pid, "first_s": now})
                job["peak_kb"] = max(job.get("peak_kb", 0), peak)
                job["last_s"] = now
            time.sleep(poll)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return process.returncode, wall, cpu, [*jobs.values(), scheduler]


def benchmark_peaks(workdir: Path, config: Path) -> pd.Series:
    """The largest max_rss (MB) per rule in the benchmark files (sampled, for comparison)."""
    peaks = {}
    for path in sorted((workdir / run_folder(config, "benchmarks")).glob("*/*.tsv")):
        table = pd.read_csv(path, sep="\t")
        rule = path.parent.name
        peaks[rule] = max(peaks.get(rule, 0.0), float(table["max_rss"].max()))
    return pd.Series(peaks, name="benchmark_max_rss_mb", dtype=float)


def measure(workflow: Path, corpus: Path, workdir: Path, shards: int, cores: int) -> dict:
    """Run the data half of `workflow` on `corpus`; print every job's peak and return the totals."""
    config = write_config(workdir, corpus_config(corpus.resolve()), shards, workflow)
    command = snakemake_command(workflow, workdir, config, cores)
    # Jobs import the locallm of the workflow they belong to.
    env = {**os.environ, "PYTHONPATH": str(workflow / "workflow" / "scripts")}
    code, wall, cpu, jobs = watch(command, workdir / "snakemake.log", env)
    if code != 0:
        sys.exit(f"snakemake failed ({code}); see {workdir / 'snakemake.log'}")
    table = pd.DataFrame(jobs)
    table["peak_mb"] = (table["peak_kb"] / 1024).round(1)
    print(f"\n== {workflow}: every job (peak resident memory, VmHWM)")
    print(table[["job", "pid", "peak_mb"]].to_string(index=False))
    per_rule = table.groupby("job")["peak_mb"].agg(["count", "max"])
    per_rule = per_rule.rename(columns={"count": "jobs", "max": "peak_mb"})
    per_rule = per_rule.join(benchmark_peaks(workdir, config), how="left")
    print("per rule (largest job; benchmark_max_rss_mb is Snakemake's sampled figure):")
    print(per_rule.sort_values("peak_mb", ascending=False).to_string())
    largest = table.loc[table["job"] != "snakemake (scheduler)", "peak_mb"].max()
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s, largest job's peak {largest:.0f} MB")
    return {"wall_s": wall, "cpu_s": cpu, "largest_peak_mb": largest}


def run(args: argparse.Namespace) -> None:
    corpus_mb = sum(p.stat().st_size for p in args.corpus.glob("*.jsonl")) / 1e6
    print(f"corpus {corpus_mb:.1f} MB, {args.shards} shards, {args.cores} cores")
    workdir = args.workdir.resolve()
    results = {}
    if args.baseline:
        results["baseline"] = measure(
            args.baseline.resolve(), args.corpus, workdir / "baseline", args.shards, args.cores
        )
    results["current"] = measure(ROOT, args.corpus, workdir / "current", args.shards, args.cores)
    table = pd.DataFrame(results).T.round(1)
    if args.baseline:
        table.loc["current / baseline"] = (table.loc["current"] / table.loc["baseline"]).round(2)
    print(f"\n{table.to_string()}")


def plan(args: argparse.Namespace) -> None:
    """Sparse files of `--mb` in all, a dry run, and each rule's jobs and mem_mb."""
    workdir = args.workdir.resolve()
    corpus = workdir / "sparse"
    corpus.mkdir(parents=True, exist_ok=True)
    # One real record, then blank lines, so that planning's column check (the keys of the first
    # 100 JSONL lines) finds the columns; the rest is a hole of the asked size.
    record = json.dumps({"id": "a", "outlet": "o", "year": 1900, "party": "p", "text": "t"})
    head = (record + "\n" + "\n" * 100).encode()
    for i in range(args.files):
        with (corpus / f"part-{i:04d}.jsonl").open("wb") as handle:
            handle.write(head)
            handle.truncate(max(len(head), int(args.mb * 1e6 / args.files)))
    config = write_config(workdir, corpus_config(corpus), args.shards)
    command = snakemake_command(ROOT, workdir, config, 2, "--dry-run")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
    print(f"plan for {args.mb:g} MB in {args.files} files, {args.shards} shards (dry run)")
    print(plan_table(result.stdout + result.stderr).to_string(index=False))


def plan_table(dry_run: str) -> pd.DataFrame:
    """Jobs per rule and the mem_mb they ask, from a dry run's job list."""
    rows = []
    for block in re.split(r"\n(?=rule \w+:)", dry_run):
        rule = re.match(r"rule (\w+):", block)
        if not rule:
            continue
        mem = re.search(r"resources:.*?\bmem_mb=(\d+)", block)
        rows.append({"rule": rule[1], "mem_mb": int(mem[1]) if mem else None})
    table = pd.DataFrame(rows, columns=["rule", "mem_mb"])
    return (
        table.groupby("rule", sort=False)
        .agg(jobs=("rule", "size"), mem_mb_min=("mem_mb", "min"), mem_mb_max=("mem_mb", "max"))
        .reset_index()
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    runner = commands.add_parser("run")
    runner.add_argument("--corpus", type=Path, required=True)
    runner.add_argument("--workdir", type=Path, required=True)
    runner.add_argument("--shards", type=int, default=8)
    runner.add_argument("--cores", type=int, default=2)
    runner.add_argument("--baseline", type=Path, help="a checkout of an earlier commit")
    planner = commands.add_parser("plan")
    planner.add_argument("--mb", type=float, required=True)
    planner.add_argument("--workdir", type=Path, required=True)
    planner.add_argument("--shards", type=int, default=80)
    planner.add_argument("--files", type=int, default=400)
    args = parser.parse_args(argv)
    run(args) if args.command == "run" else plan(args)


if __name__ == "__main__":
    main()
