"""REFORMS.md: the 32 items of the REFORMS checklist (Kapoor et al. 2024), each filled from the
run's files (naming the file) where the run knows the answer, otherwise marked for the author.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.annotate.card import estimates_section
from locallm.config import tokenization_id, variant_settings
from locallm.model.facts import TINY, base_licence
from locallm.model.sources import builtin_name, gguf_sources
from locallm.report.reforms_items import AUTHOR_HINTS, ITEMS, MODULES
from locallm.report.run_files import (
    RUN_INFO,
    Run,
    as_int,
    cite,
    label_balance,
    label_origin,
    leakage_check,
    metric_table,
    read_tsv,
    record_flow,
    sample_size,
    sources,
)
from locallm.tables import markdown_table

AUTHOR = "**For the author.**"


def _compute(run: Run) -> str:
    env = run.environment
    lines = []
    if env:
        gpus = ", ".join(env["gpus"]) or "none"
        lines.append(
            f"Report written on: {env['os']}; CPU {env['cpu']} ({env['cpu_count']} logical); "
            f"GPUs: {gpus}; Python {env['python']}, torch {env['torch']} (CUDA {env['cuda']})."
        )
    rows = []
    for variant, stage in run.models:
        info = run.run_info(variant, stage)
        rows.append(
            {
                "variant": variant,
                "stage": stage,
                "device": info.get("device"),
                "world size": info.get("world_size"),
                "wall s": info.get("wall_time_s"),
                "tokens/s": info.get("tokens_per_s"),
                "peak RSS MB": info.get("peak_rss_mb"),
                "peak GPU MB": info.get("peak_gpu_mb", ""),
                "SLURM job": info.get("slurm_job_id", ""),
            }
        )
    lines.append(markdown_table(pd.DataFrame(rows)))
    total = benchmark_seconds(run_benchmarks(run.benchmarks, run.config))
    if total is not None:
        lines.append(
            f"All jobs together: {total / 60:.1f} minutes of wall time (the sum over jobs, each "
            "counted at its latest run)."
        )
    run_infos = [f"`{p}/{RUN_INFO}`" for p in run.models.values()]
    lines.append(
        "Source: `environment.json`, " + ", ".join(run_infos) + f", `{run.benchmarks}/*/*.tsv`."
    )
    return "\n\n".join(lines)


# Benchmark folders per rule whose first name is a variant (then stage, then shard), or a shard.
VARIANT_RULES = ("sft", "dpo", "fetch_base", "gather_predictions", "infer", "merge", "perplexity")
SHARD_RULES = ("ingest", "filter", "minhash", "cluster_assign")
# Not part of the run the report describes: they package it afterwards.
AFTER_RUN_RULES = ("archive", "archive_with_data")


def run_benchmarks(folder: str | os.PathLike, config: dict[str, Any]) -> list[Path]:
    """The benchmark files of this config's jobs in `folder`.

    benchmarks/ is shared by every config run in the same working folder: files of other
    variants, shard counts, tokenizations or bases would otherwise be summed into this run's time.
    """
    variants, stages = set(config["variants"]), set(config["inference"]["stages"])
    bases = {variant_settings(config, v)["base"] for v in config["variants"]}
    own = {
        "tokenize": {tokenization_id(config, v) for v in config["variants"]},
        "convert_gguf": set(gguf_sources(sorted(bases))),
        "fetch_builtin": {builtin_name(b) for b in bases if b.startswith("builtin:")},
    }

    def shard_of(name: str, count: int) -> bool:
        return name.isdigit() and int(name) < count

    def of_this_run(parts: tuple[str, ...]) -> bool:
        rule, names = parts[0], parts[1:]
        if rule in AFTER_RUN_RULES:
            return False
        if rule == "bootstrap_base":
            return TINY in bases
        if rule in own:
            return names[0] in own[rule]
        if rule in SHARD_RULES:
            return shard_of(names[0], config["corpus"]["shards"])
        if rule in VARIANT_RULES:
            return (
                names[0] in variants
                and (len(names) < 2 or names[1] in stages)
                and (len(names) < 3 or shard_of(names[2], config["inference"]["shards"]))
            )
        return True

    files = sorted(Path(folder).glob("*/**/*.tsv"))
    return [f for f in files if of_this_run(f.relative_to(folder).with_suffix("").parts)]


def benchmark_seconds(files: list[Path]) -> float | None:
    """Wall seconds summed over the benchmark files Snakemake wrote for each job, if any."""
    if not files:
        return None
    return float(sum(read_tsv(str(f))["s"].sum() for f in files))


def _outcome(run: Run) -> str:
    task = run.config["task"]
    return (
        f"Task `{task['kind']}`: the label in column `{task['label_column']}`, one of "
        + ", ".join(f"`{label}`" for label in task["labels"])
        + ". "
        + label_origin(run.config)
        + " The prompt:\n\n```text\n"
        + task["prompt"]
        + "\n```\n\n"
        + markdown_table(label_balance(run))
        + "\n\n"
        + cite(run.split_report)
        + "\n\n"
        + AUTHOR
        + " How the labels were made (who annotated, with what instructions, agreement)."
    )


def _exclusions(run: Run) -> str:
    flow = record_flow(run)
    removed = flow[flow.stage.str.startswith(("removed", "rejected"))]
    return (
        markdown_table(removed) + "\n\nEvery removed record is in a rejects table with its reason: "
        f"`{run.results}/corpus/rejects/`, `{run.results}/filtered/rejects/`, "
        f"`{run.split_rejects}`. "
        "Filter settings: config `filter` (in `config.yaml`)."
        + "\n\n"
        + AUTHOR
        + " Why these exclusions suit the study."
    )


def _corrupt(run: Run) -> str:
    ingest = run.table(run.ingest_report).set_index("shard").loc["all"]
    reasons = {
        k.removeprefix("rejected_"): as_int(v)
        for k, v in ingest.items()
        if k.startswith("rejected_")
    }
    listed = ", ".join(f"{name}: {count}" for name, count in reasons.items())
    return (
        "Records that cannot be read (undecodable bytes, malformed rows, missing or empty text, "
        "id or group, duplicate ids) are rejected at ingest with the reason, never dropped "
        f"silently; raw = kept + rejected is checked per shard. This run: {listed}. "
        + cite(run.ingest_report)
    )


def _flow(run: Run) -> str:
    settings = run.config
    lines = [
        markdown_table(record_flow(run)),
        f"Records are cut into passages of about {settings['corpus']['chunk_chars']} characters, "
        "filtered (quality rules, exact and near duplicates), split by group, turned into prompts "
        "with the task's template, and tokenized per variant:",
    ]
    for variant, path in run.lengths.items():
        lengths = run.table(path)
        lines.append(f"{variant}:\n\n" + markdown_table(lengths))
    lengths = ", ".join(f"`{path}`" for path in run.lengths.values())
    lines.append(f"Source: {lengths}; for the first table, its `source` column.")
    return "\n\n".join(lines)


def _models(run: Run) -> str:
    rows = []
    for (variant, stage), _path in run.models.items():
        info = run.run_info(variant, stage)
        rows.append(
            {
                "variant": variant,
                "stage": stage,
                "method": info.get("method"),
                "base": info.get("base"),
                "base fingerprint": info.get("base_fingerprint"),
                "base licence": base_licence(info.get("base"), info.get("base_path"))
                or "not stated",
                "steps": info.get("steps"),
                "trainable params": info.get("trainable_parameters"),
                "total params": info.get("total_parameters"),
                "final loss": info.get("final_loss"),
            }
        )
    sources = ", ".join(f"`{p}/{RUN_INFO}`" for p in run.models.values())
    return (
        markdown_table(pd.DataFrame(rows))
        + f"\n\nSource: {sources}; model cards in `model_cards/`."
    )


def _evaluation_method(run: Run) -> str:
    split, evaluation = run.config["split"], run.config["evaluation"]
    leak = run.split_value("leakage", "all", "groups_straddling_splits")
    return (
        f"Hold-out evaluation: whole groups go to train/validation/test by a seeded hash "
        f"(seed {run.config['seed']}; fractions and stratification in config `split`: "
        f"`{json.dumps(split, sort_keys=True)}`); groups straddling two splits: {leak}. Test "
        f"metrics with {evaluation['bootstrap']} bootstrap resamples of whole groups. "
        + cite("config.yaml", run.split_report)
    )


def selection_criterion(run: Run) -> str:
    good_enough = run.config["evaluation"].get("good_enough")
    lines = []
    if good_enough:
        lines.append(
            f"Pre-set criterion (config `evaluation.good_enough`, fixed before the run): "
            f"`{json.dumps(good_enough, sort_keys=True)}`. {cite('config.yaml')}"
        )
    if run.decision is not None:
        # Quoted without its title, so the checklist keeps its own heading levels.
        text = Path(run.decision).read_text()
        body = [line for line in text.strip().splitlines() if not line.startswith("# ")]
        quoted = "\n".join(f"> {line}".rstrip() for line in "\n".join(body).strip().splitlines())
        lines.append(f"The decision it led to:\n\n{quoted}\n\n" + cite(run.decision))
    if not lines:
        return (
            AUTHOR + " No selection criterion was set before the run "
            "(`evaluation.good_enough`); state how the reported model was chosen."
        )
    return "\n\n".join(lines)


def _hyperparameters(run: Run) -> str:
    settings = {
        f"{variant}/{stage}": run.run_info(variant, stage).get("settings", {})
        for variant, stage in run.models
    }
    keys = sorted({k for s in settings.values() for k in s})
    frame = pd.DataFrame(
        [{"setting": k, **{name: s.get(k, "") for name, s in settings.items()}} for k in keys]
    )
    return (
        markdown_table(frame)
        + "\n\nThe workflow does not tune hyperparameters: they are the config's values. "
        + cite(*(f"{p}/{RUN_INFO}" for p in run.models.values()))
        + "\n\n"
        + AUTHOR
        + " If these values were chosen by trying others, say how and on which split."
    )


def _baselines(run: Run) -> str:
    if run.metrics is None:
        return AUTHOR + " No labelled test split was evaluated in this run."
    baselines = metric_table(run, ["accuracy", "macro_f1"])
    baselines = baselines[baselines.variant == "baseline"]
    return (
        "Every model is compared with a majority-class baseline (the most frequent label of the "
        "train split) and a uniform random one, on the same test rows and the same bootstrap; "
        "`accuracy_over_majority` is the paired difference.\n\n"
        + markdown_table(baselines)
        + "\n\n"
        + cite(run.metrics)
    )


def _train_only(run: Run) -> str:
    base = run.config["model"]["base"]
    lines = [
        "Labels of the validation and test splits are never used for training. The majority "
        "baseline uses train labels only.",
        "The topic clusters (`cluster_fit`) are fitted on a sample of the whole corpus, test "
        "passages included, without labels; they describe the corpus and feed the optional "
        "per-cluster cap of the filters, not the models.",
    ]
    if base == "builtin:tiny":
        lines.append("The tiny base is pretrained on the train split's text only.")
    else:
        lines.append(
            AUTHOR + f" Whether the base `{base}` saw the test texts in its pretraining "
            "(contamination) cannot be checked by this workflow."
        )
    lines.append(cite("config.yaml", "docs/data.md"))
    return "\n\n".join(lines)


def _metrics(run: Run) -> str:
    if run.metrics is None:
        return AUTHOR + " No labelled test split was evaluated in this run."
    names = sorted(run.table(run.metrics).metric.unique())
    return (
        "Metrics: "
        + ", ".join(f"`{n}`" for n in names)
        + ".\n\n"
        + markdown_table(
            metric_table(run, ["accuracy", "accuracy_over_majority", "macro_f1", "cohen_kappa"])
        )
        + "\n\n`passage seen`: the mean share of each test passage's tokens in its prompt (and "
        "the share of rows whose passage was cut to fit the model's context); a stage that saw "
        "less of the text is compared knowing it (columns `text_seen`, `text_cut_share`).\n\n"
        + cite(run.metrics)
        + "\n\n"
        + AUTHOR
        + " Why the metric that selects the model suits the task."
        + _annotation(run)
    )


def _annotation(run: Run) -> str:
    """The label shares of the annotated corpus and what they assume (from the annotation card)."""
    if not run.annotation:
        return ""
    estimates = run.table(run.annotation["estimates"])
    return (
        "\n\nThe corpus annotated with the chosen stage (results/annotate/card.md says which and "
        "why); each label's share, three ways:\n\n"
        + "\n".join(estimates_section(estimates))
        + "\n\n"
        + cite(run.annotation["card"], run.annotation["estimates"])
    )


def _uncertainty(run: Run) -> str:
    evaluation = run.config["evaluation"]
    return (
        f"95% percentile intervals from {evaluation['bootstrap']} bootstrap resamples of whole "
        f"groups (seed {run.config['seed']}): passages of one document are not independent, so "
        "documents, not passages, are resampled. Columns `ci_low`, `ci_high` of metrics.tsv. "
        + cite("config.yaml", *([run.metrics] if run.metrics else []))
    )


def _seeds(run: Run) -> str:
    env = run.environment
    flags = ", ".join(env.get("cpu_flags") or []) or "not recorded"
    return (
        f"One seed ({run.config['seed']}) drives sampling, splits, training and the bootstrap. "
        "On CPUs of the same family the same seed gives byte-identical results; on another CPU "
        "family the data tables and splits stay identical but model outputs do not (in one "
        "trial, AVX2-only against AVX-512-BF16, up to 29 of 1,349 predictions differed; "
        f"docs/reproduce.md). This run: CPU {env.get('cpu', 'not recorded')}, vector flags "
        f"{flags}. This run did not repeat training with other seeds, so the CIs above do not "
        "include training variability.\n\n"
        + AUTHOR
        + " Rerun with other `seed` values if the claim needs it. "
        + cite("environment.json")
    )


def _code(run: Run) -> str:
    git = run.environment["git"]
    if git["commit"] is None:
        state = "The workflow's code was not a git checkout, so no commit is recorded"
    else:
        tree = "with uncommitted changes to " + ", ".join(git["changed_files"])
        state = f"The workflow's code at git commit `{git['commit']}` " + (
            f"({tree})" if git["dirty"] else "(clean working tree)"
        )
        if "source" in git:
            state += f", as recorded in {git['source']}"
    return state + ". " + cite("environment.json") + "\n\n" + AUTHOR + " A DOI for it."


REFORMS_FILLERS = {
    "2a": lambda run: sources(run) + " " + cite("checksums.tsv", run.ingest_report),
    "2b": _code,
    "2c": _compute,
    "2d": lambda run: (
        "`README.md` and `docs/reproduce.md` of the code at that commit; the resolved config "
        "is `config.yaml` beside this file. " + cite("README.md", "docs/reproduce.md")
    ),
    "2e": lambda run: (
        f"`snakemake --cores all --configfile={run.results}/report/config.yaml` reruns "
        f"everything; `snakemake --cores 1 --configfile={run.results}/report/config.yaml archive` "
        "writes one .tar.gz (code, config, package lock, checksums) that reruns elsewhere "
        "(`--configfile=` is one token: written apart, it would take the target `archive` for a "
        "second config file). " + cite("config.yaml", "docs/reproduce.md")
    ),
    "3a": lambda run: sources(run) + "\n\n" + AUTHOR + " When and how the data were collected.",
    "3d": _outcome,
    "3e": sample_size,
    "4a": _exclusions,
    "4b": _corrupt,
    "4c": _flow,
    "5a": _models,
    "5c": _evaluation_method,
    "5d": selection_criterion,
    "5e": _hyperparameters,
    "5f": _baselines,
    "6a": _train_only,
    "6b": leakage_check,
    "7a": _metrics,
    "7b": _uncertainty,
    "7d": _seeds,
}


def reforms_markdown(run: Run) -> str:
    """REFORMS.md: all 32 items by module, each filled from the run or marked for the author."""
    lines = [
        "# REFORMS checklist",
        "",
        "The 32 items of REFORMS (Kapoor et al., *Science Advances* 10:eadk3452, 2024; "
        "reforms.cs.princeton.edu), paraphrased. Filled items name the file they come from "
        "(paths relative to the working directory; `config.yaml`, `environment.json` and "
        "`checksums.tsv` are beside this file). Items marked **For the author** need what only "
        "the study's author knows.",
        "",
    ]
    for module, title in MODULES.items():
        lines += [f"## {module}. {title}", ""]
        for item, question in ITEMS.items():
            if item[0] != module:
                continue
            filler = REFORMS_FILLERS.get(item)
            if filler is not None:
                answer = filler(run)
            else:
                answer = AUTHOR + (" " + AUTHOR_HINTS[item] if item in AUTHOR_HINTS else "")
            lines += [f"### {item}. {question}", "", answer, ""]
    return "\n".join(lines)
