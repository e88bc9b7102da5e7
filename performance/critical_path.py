"""A finished run's wall time against its critical path and its serial time, from its own records.

    python performance/critical_path.py RUN_DIR --log RUN_DIR/run.log [RUN_DIR2 --log ...] \
        [--name demo]

Per-job wall seconds come from Snakemake's `benchmark:` files (RUN_DIR/benchmarks/NAME/<rule>/
...tsv, NAME the config's `name`; without --name RUN_DIR/benchmarks/<rule>/...tsv, older runs);
the rule graph from `snakemake --rulegraph` in RUN_DIR. The critical path is the longest chain of
rules, each weighted by its slowest job (jobs of one rule can run side by side); the serial time is
the sum of all jobs, what the run takes when no two jobs overlap. The wall time runs from the first
to the last timestamp of the run's log (`snakemake ... > run.log 2>&1`). Wall time can not fall
below the critical path: wall / critical path is printed beside that bound of 1.

Then the chain the run took along the critical path's rules, runs side by side: walking back from
the last job, the job of each rule whose end the next one waited for (the log's start and end
stamps), its wall and CPU seconds (the benchmark files' `cpu_time`, all threads), and how long it
waited after the previous one ended (for a core, or an input off the path; 0: started at once).
Last, the CPU seconds of each rule's jobs summed, runs side by side.
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
JOB_BENCHMARK = re.compile(r"^\s+benchmark: (\S+)$")
JOB_RULE = re.compile(r"^(?:local)?rule \w+:$")


def job_seconds(run_dir: Path, name: str | None = None) -> pd.DataFrame:
    """rule, file (relative to the run), wall and CPU seconds of every job with a benchmark file
    (under benchmarks/NAME/ when the run's config `name` is given)."""
    rows = []
    folder = run_dir / "benchmarks" / name if name else run_dir / "benchmarks"
    for tsv in sorted(folder.rglob("*.tsv")):
        record = pd.read_csv(tsv, sep="\t").iloc[0]
        rows.append({"rule": tsv.relative_to(folder).parts[0],
                     "file": str(tsv.relative_to(run_dir)), "seconds": float(record["s"]),
                     "cpu_s": float(record["cpu_time"])})  # fmt: skip
    if not rows:
        raise FileNotFoundError(f"no benchmark files under {folder}")
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


def job_spans(log: Path) -> dict[str, tuple[datetime, datetime]]:
    """{benchmark file: (start, end)} of every job the log shows starting and finishing."""
    started, files, spans, stamp, block = {}, {}, {}, None, {}
    for line in log.read_text().splitlines():
        if found := STAMP.match(line):
            stamp = datetime.strptime(found.group(1), "%a %b %d %H:%M:%S %Y")
        elif JOB_RULE.match(line):
            block = {}  # a job's block: its jobid and benchmark file, in either order
        elif found := JOB_BENCHMARK.match(line):
            block["file"] = found.group(1)
        elif found := JOB_START.match(line):
            block["jobid"] = found.group(1)
            started[found.group(1)] = stamp
        elif (found := JOB_END.match(line)) and found.group(1) in files:
            spans[files[found.group(1)]] = (started[found.group(1)], stamp)
        if "jobid" in block and "file" in block:
            files[block["jobid"]] = block["file"]
    return spans


def chain_taken(
    path: list[str], jobs: pd.DataFrame, spans: dict[str, tuple[datetime, datetime]]
) -> pd.DataFrame:
    """The jobs the run's end waited on, one per rule of `path`, walked back from the last: of each
    rule, the job that ended last before the chosen job of the next rule started (the input that
    arrived last). wait_s: from the previous chosen job's end to this one's start: time it waited
    for a core, or for an input off the path. A rule none of whose jobs the log shows keeps its
    slowest job, no wait.
    """
    chosen, next_start = [], None
    for rule in reversed(path):
        candidates = jobs[jobs["rule"] == rule]
        shown = [
            (spans[f][1], i)
            for i, f in candidates["file"].items()
            if f in spans and (next_start is None or spans[f][1] <= next_start)
        ]
        if not shown:
            row = candidates.loc[candidates["seconds"].idxmax()].to_dict()
            chosen.append({**row, "gap_s": 0.0})
            continue
        end, index = max(shown)
        wait = (next_start - end).total_seconds() if next_start is not None else 0.0
        chosen.append({**candidates.loc[index].to_dict(), "gap_s": wait})
        next_start = spans[candidates.at[index, "file"]][0]
    taken = pd.DataFrame(chosen[::-1])
    # The gap after a job is the wait of the job after it.
    taken["wait_s"] = [0.0, *taken["gap_s"].iloc[:-1]]
    return taken.drop(columns="gap_s")


def summary(
    run_dir: Path, log: Path, rulegraph: str | None = None, name: str | None = None
) -> dict:
    """Wall, serial and critical-path seconds of one run (rulegraph: dot text, else computed)."""
    if rulegraph is None:
        rulegraph = subprocess.run(
            [sys.executable, "-m", "snakemake", "--rulegraph", "--cores", "1"],
            cwd=run_dir, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    jobs = job_seconds(run_dir, name)
    rules, edges = parse_rulegraph(rulegraph)
    slowest = jobs.groupby("rule")["seconds"].max().to_dict()
    path_seconds, path = critical_path(rules, edges, slowest)
    wall = log_wall_seconds(log)
    path = [r for r in path if slowest.get(r)]
    path_jobs = chain_taken(path, jobs, job_spans(log))
    return {
        "run": str(run_dir),
        "jobs": len(jobs),
        "job_table": jobs,
        "wall_s": wall,
        "serial_s": jobs["seconds"].sum(),
        "critical_path_s": path_seconds,
        "wall_over_critical_path": wall / path_seconds,
        "overlapping_s": overlapping_seconds(log),
        "path": " → ".join(path),
        "path_jobs": path_jobs,
        "path_wait_s": path_jobs["wait_s"].sum(),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (working directories)")
    parser.add_argument("--log", action="append", type=Path, required=True, help="one per run")
    parser.add_argument("--name", help="the runs' config `name` (benchmarks/NAME/)")
    args = parser.parse_args(argv)
    if len(args.log) != len(args.runs):
        parser.error("give one --log per run folder")
    rows = [summary(run, log, name=args.name) for run, log in zip(args.runs, args.log, strict=True)]
    print("| run | jobs | wall s | serial s (sum of jobs) | critical path s | wall / critical path "
          "(bound 1) | s with 2+ jobs running |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['jobs']} | {r['wall_s']:.0f} | {r['serial_s']:.0f} "
              f"| {r['critical_path_s']:.0f} | {r['wall_over_critical_path']:.2f} "
              f"| {r['overlapping_s']:.0f} |")  # fmt: skip
    for r in rows:
        print(f"critical path of {r['run']}: {r['path']}")
    print(path_table(rows))
    print(rule_cpu_table(rows))
    return rows


def rule_cpu_table(rows: list[dict]) -> str:
    """CPU seconds of every rule's jobs summed (all threads), runs side by side, and the total."""
    sums = [r["job_table"].groupby("rule")["cpu_s"].agg(["count", "sum"]) for r in rows]
    rules = sorted(set().union(*(s.index for s in sums)))
    lines = ["| rule | " + " | ".join(f"{r['run']} jobs | CPU s" for r in rows) + " |",
             "|---|" + "---|---|" * len(rows)]  # fmt: skip
    for rule in rules:
        cells = [f"{s.at[rule, 'count']} | {s.at[rule, 'sum']:.1f}" if rule in s.index
                 else "– | –" for s in sums]  # fmt: skip
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    totals = " | ".join(f"{int(s['count'].sum())} | {s['sum'].sum():.1f}" for s in sums)
    lines.append(f"| **all** | {totals} |")
    return "\n".join(lines)


def path_table(rows: list[dict]) -> str:
    """The chains taken, rule by rule, runs side by side (rules in the order of the first)."""
    order = list(dict.fromkeys(rule for r in rows for rule in r["path_jobs"]["rule"]))
    header = "| rule | " + " | ".join(
        f"{r['run']} s | CPU s | waited s" for r in rows
    ) + " |"  # fmt: skip
    lines = [header, "|---|" + "---|---|---|" * len(rows)]
    for rule in order:
        cells = []
        for r in rows:
            job = r["path_jobs"].set_index("rule")
            cells.append(
                f"{job.at[rule, 'seconds']:.0f} | {job.at[rule, 'cpu_s']:.0f} | "
                f"{job.at[rule, 'wait_s']:.0f}"
                if rule in job.index
                else "– | – | –"
            )
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    totals = " | ".join(
        f"{r['path_jobs']['seconds'].sum():.0f} | {r['path_jobs']['cpu_s'].sum():.0f} | "
        f"{r['path_wait_s']:.0f}" for r in rows
    )  # fmt: skip
    lines.append(f"| **path** | {totals} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
