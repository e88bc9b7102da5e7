"""A finished run's wall time against its critical path and its serial time, from its own records.

    python performance/critical_path.py RUN_DIR --log RUN_DIR/run.log [RUN_DIR2 --log ...]

Per-job wall seconds come from Snakemake's `benchmark:` files (RUN_DIR/benchmarks/<rule>/...tsv);
the rule graph from `snakemake --rulegraph` in RUN_DIR. The critical path is the longest chain of
rules, each weighted by its slowest job (jobs of one rule can run side by side); the serial time is
the sum of all jobs, what the run takes when no two jobs overlap. The wall time runs from the first
to the last timestamp of the run's log (`snakemake ... > run.log 2>&1`). Wall time can not fall
below the critical path: wall / critical path is printed beside that bound of 1.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pandas as pd

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.MULTILINE)
NODE = re.compile(r'^\s*(\d+)\[label = "([^"]+)"', re.MULTILINE)
EDGE = re.compile(r"^\s*(\d+) -> (\d+)", re.MULTILINE)
JOB_START = re.compile(r"^\s+jobid: (\d+)$")
JOB_END = re.compile(r"^Finished jobid: (\d+)")


def job_seconds(run_dir: Path) -> pd.DataFrame:
    """rule, file and wall seconds of every job with a benchmark file."""
    rows = [
        {"rule": tsv.relative_to(run_dir / "benchmarks").parts[0], "file": str(tsv),
         "seconds": float(pd.read_csv(tsv, sep="\t")["s"].iloc[0])}
        for tsv in sorted((run_dir / "benchmarks").rglob("*.tsv"))
    ]  # fmt: skip
    if not rows:
        raise FileNotFoundError(f"no benchmark files under {run_dir / 'benchmarks'}")
    return pd.DataFrame(rows)


def parse_rulegraph(dot: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Rule names and (upstream, downstream) edges of `snakemake --rulegraph` output."""
    names = {number: name for number, name in NODE.findall(dot)}
    return list(names.values()), [(names[a], names[b]) for a, b in EDGE.findall(dot)]


def critical_path(
    rules: list[str], edges: list[tuple[str, str]], seconds: dict[str, float]
) -> tuple[float, list[str]]:
    """The longest chain of rules weighted by `seconds` (0 for rules that did not run)."""
    upstream = defaultdict(list)
    for a, b in edges:
        upstream[b].append(a)
    best: dict[str, tuple[float, list[str]]] = {}

    def longest(rule: str) -> tuple[float, list[str]]:
        if rule not in best:
            before = max((longest(u) for u in upstream[rule]), default=(0.0, []))
            best[rule] = (before[0] + seconds.get(rule, 0.0), [*before[1], rule])
        return best[rule]

    return max(longest(rule) for rule in rules)


def log_wall_seconds(log: Path) -> float:
    """Seconds from the first to the last timestamp Snakemake wrote to its log."""
    stamps = [datetime.strptime(s, "%a %b %d %H:%M:%S %Y") for s in STAMP.findall(log.read_text())]
    if len(stamps) < 2:
        raise ValueError(f"{log}: fewer than two Snakemake timestamps; is it a run's log?")
    return (max(stamps) - min(stamps)).total_seconds()


def overlapping_seconds(log: Path) -> float:
    """Seconds during which two or more jobs ran at once (job starts and ends in the log)."""
    events, stamp = [], None
    for line in log.read_text().splitlines():
        if found := STAMP.match(line):
            stamp = datetime.strptime(found.group(1), "%a %b %d %H:%M:%S %Y")
        elif JOB_START.match(line):
            events.append((stamp, 1))
        elif JOB_END.match(line):
            events.append((stamp, -1))
    events.sort(key=lambda event: event[0])
    running, overlapping = 0, 0.0
    for (time, change), (following, _) in zip(events, [*events[1:], events[-1]], strict=True):
        running += change
        if running >= 2:
            overlapping += (following - time).total_seconds()
    return overlapping


def summary(run_dir: Path, log: Path, rulegraph: str | None = None) -> dict:
    """Wall, serial and critical-path seconds of one run (rulegraph: dot text, else computed)."""
    if rulegraph is None:
        rulegraph = subprocess.run(
            [sys.executable, "-m", "snakemake", "--rulegraph", "--cores", "1"],
            cwd=run_dir, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    jobs = job_seconds(run_dir)
    rules, edges = parse_rulegraph(rulegraph)
    slowest = jobs.groupby("rule")["seconds"].max().to_dict()
    path_seconds, path = critical_path(rules, edges, slowest)
    wall = log_wall_seconds(log)
    return {
        "run": str(run_dir),
        "jobs": len(jobs),
        "wall_s": wall,
        "serial_s": jobs["seconds"].sum(),
        "critical_path_s": path_seconds,
        "wall_over_critical_path": wall / path_seconds,
        "overlapping_s": overlapping_seconds(log),
        "path": " → ".join(r for r in path if slowest.get(r)),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (working directories)")
    parser.add_argument("--log", action="append", type=Path, required=True, help="one per run")
    args = parser.parse_args(argv)
    if len(args.log) != len(args.runs):
        parser.error("give one --log per run folder")
    rows = [summary(run, log) for run, log in zip(args.runs, args.log, strict=True)]
    print("| run | jobs | wall s | serial s (sum of jobs) | critical path s | wall / critical path "
          "(bound 1) | s with 2+ jobs running |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['jobs']} | {r['wall_s']:.0f} | {r['serial_s']:.0f} "
              f"| {r['critical_path_s']:.0f} | {r['wall_over_critical_path']:.2f} "
              f"| {r['overlapping_s']:.0f} |")  # fmt: skip
    for r in rows:
        print(f"critical path of {r['run']}: {r['path']}")
    return rows


if __name__ == "__main__":
    main()
