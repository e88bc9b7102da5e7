"""Replay a finished run's jobs on N cores under two start orders: the run's own, and the priority
policy of the current workflow (locallm.scheduling.chain_priority).

    python performance/schedule_replay.py RUN_LOG [--cores 2] [--config config/config.yaml]

Every job's duration (the log's start and end stamps, 1 s resolution), threads and wildcards come
from the run's log (`snakemake ... > run.log 2>&1`); a job depends on the jobs whose outputs are
among its inputs. The replay starts ready jobs whenever their threads fit in the free cores, in
order of priority, then of their start in the run. Durations stay those of the run, so the
projection holds for a machine as loaded as the run's (measured on an idle one: a projection for an
idle machine), and it ignores what sharing the cores differently would change in each job. The
replay of the run's own order (all priorities 0) is printed beside the measured wall time, as a
check of the replay itself, and the bound no order can beat: the longest chain of jobs, or the
jobs' core-seconds divided by the cores, whichever is larger.
"""

from __future__ import annotations

import argparse
import heapq
import re
from datetime import datetime
from pathlib import Path

from locallm.config import load_config  # noqa: E402
from locallm.scheduling import training_priority  # noqa: E402

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
RULE = re.compile(r"^(?:local)?rule (\w+):$")
FIELD = re.compile(r"^\s+(input|output|jobid|threads|wildcards): (.*)$")
END = re.compile(r"^Finished jobid: (\d+)")
# The rules with `priority: job_priority` in workflow/rules/.
PRIORITISED_RULES = ("tokenize", "sft", "dpo")


def parse_jobs(log: Path) -> dict[str, dict]:
    """{jobid: rule, inputs, outputs, threads, wildcards, start, end} of every finished job."""
    jobs, job, stamp = {}, None, None
    for line in log.read_text().splitlines():
        if found := STAMP.match(line):
            stamp = datetime.strptime(found.group(1), "%a %b %d %H:%M:%S %Y")
        elif found := RULE.match(line):
            job = {"rule": found.group(1), "input": [], "output": [], "threads": 1,
                   "wildcards": {}, "start": stamp}  # fmt: skip
        elif job is not None and (found := FIELD.match(line)):
            key, value = found.groups()
            if key in ("input", "output"):
                job[key] = value.split(", ")
            elif key == "wildcards":
                job[key] = dict(pair.split("=", 1) for pair in value.split(", "))
            elif key == "threads":
                job[key] = int(value)
            else:
                jobs[value] = job
        elif found := END.match(line):
            if found.group(1) in jobs:
                jobs[found.group(1)]["end"] = stamp
    return {i: j for i, j in jobs.items() if "end" in j and j["rule"] != "all"}


def dependencies(jobs: dict[str, dict]) -> dict[str, set[str]]:
    """{jobid: jobids whose outputs (files or folders) it reads}."""
    producers = {path: i for i, job in jobs.items() for path in job["output"]}
    needs = {}
    for i, job in jobs.items():
        needs[i] = set()
        for path in job["input"]:
            for output, producer in producers.items():
                if path == output or path.startswith(output + "/"):
                    needs[i].add(producer)
    return needs


def replay(jobs: dict[str, dict], needs: dict[str, set[str]], priority: dict[str, float],
           cores: int) -> float:  # fmt: skip
    """Wall seconds of the jobs on `cores`, started greedily by (priority, start in the run)."""
    order = sorted(jobs, key=lambda i: jobs[i]["start"])
    rank = {i: n for n, i in enumerate(order)}
    done, running, clock, free = set(), [], 0.0, cores
    waiting = set(jobs)
    while waiting or running:
        ready = [i for i in waiting if needs[i] <= done]
        for i in sorted(ready, key=lambda i: (-priority[i], rank[i])):
            threads = min(jobs[i]["threads"], cores)
            if threads <= free:
                seconds = (jobs[i]["end"] - jobs[i]["start"]).total_seconds()
                heapq.heappush(running, (clock + seconds, rank[i], i, threads))
                waiting.discard(i)
                free -= threads
        if not running:
            raise ValueError(f"jobs that can never start: {sorted(waiting)}")
        clock, _, finished, threads = heapq.heappop(running)
        done.add(finished)
        free += threads
    return clock


def lower_bound(jobs: dict[str, dict], needs: dict[str, set[str]], cores: int) -> float:
    """No order can beat the longest chain of jobs, nor the core-seconds spread over every core."""
    seconds = {i: (j["end"] - j["start"]).total_seconds() for i, j in jobs.items()}
    finish: dict[str, float] = {}

    def chain(i: str) -> float:
        if i not in finish:
            finish[i] = seconds[i] + max((chain(k) for k in needs[i]), default=0.0)
        return finish[i]

    longest = max(chain(i) for i in jobs)
    core_seconds = sum(seconds[i] * min(j["threads"], cores) for i, j in jobs.items())
    return max(longest, core_seconds / cores)


def policy_priorities(jobs: dict[str, dict], config: dict) -> dict[str, float]:
    """Each job's priority under the current workflow's policy (common.smk's job_priority)."""
    return {
        i: training_priority(config, job["wildcards"]) if job["rule"] in PRIORITISED_RULES else 0
        for i, job in jobs.items()
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, help="the run's Snakemake log")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    args = parser.parse_args(argv)
    jobs = parse_jobs(args.log)
    needs = dependencies(jobs)
    measured = max(j["end"] for j in jobs.values()) - min(j["start"] for j in jobs.values())
    config = load_config(args.config)
    rows = [
        {"order": "measured (the run itself)", "wall_s": measured.total_seconds()},
        {"order": "replay: the run's own order (all priorities 0)",
         "wall_s": replay(jobs, needs, dict.fromkeys(jobs, 0), args.cores)},
        {"order": "replay: locallm.scheduling priorities",
         "wall_s": replay(jobs, needs, policy_priorities(jobs, config), args.cores)},
    ]  # fmt: skip
    bound = lower_bound(jobs, needs, args.cores)
    print(f"{len(jobs)} jobs of {args.log}, {args.cores} cores")
    print("| start order | wall s | vs measured | lower bound s (any order) |")
    print("|---|---|---|---|")
    for row in rows:
        row["bound_s"] = bound
        print(f"| {row['order']} | {row['wall_s']:.0f} | {row['wall_s'] / rows[0]['wall_s']:.2f} "
              f"| {bound:.0f} |")  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
