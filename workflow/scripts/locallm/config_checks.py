"""Config problems that can be known before any job runs, checked when Snakemake builds the DAG.

The schema checks types and ranges; these checks need more than one key or a look at the files.
Each problem is one line naming the key and the fix, and all of them are reported at once.
"""

from __future__ import annotations

from typing import Any

from locallm.annotate.checks import annotate_problems
from locallm.config import variant_settings
from locallm.data.readers import peek_columns
from locallm.data.sotu import COLUMNS as SOTU_COLUMNS
from locallm.data.sources import RESERVED, corpus_paths, metadata_names, settings_problems
from locallm.model.gguf_files import gguf_problem
from locallm.model.sources import (
    gguf_source,
    is_gguf_base,
    licence_problems,
    missing_folder_problem,
)
from locallm.settings import split_fractions
from locallm.task.formats import completion_problems
from locallm.task.prompts import (
    label_problems,
    preference_problems,
    prompt_columns,
    prompt_problems,
)

# Columns a prompt may name besides the corpus's metadata: ingest's own, then the filter's cluster
# and the split's name.
PROMPT_COLUMNS = (*RESERVED, "cluster", "split")
# Folders under results/NAME/models/ the workflow writes besides the variants' own (the bootstrapped
# base, converted GGUF bases, fetch markers): a variant of that name would nest its outputs in them.
RESERVED_VARIANT_NAMES = ("base", "converted", "fetched")
# Metrics that are shares in [0, 1]; the others (kappa, alpha, accuracy over majority) go to -1.
SHARE_METRICS = ("accuracy", "macro_f1")


def config_problems(config: dict[str, Any]) -> list[str]:
    """Every problem of a config (with defaults filled in) found without running a job."""
    problems = settings_problems(config["corpus"])
    if config["corpus"]["source"] == "files":
        try:
            files = corpus_paths(config["corpus"]["paths"])
        except (OSError, ValueError) as error:
            problems.append(str(error))
        else:
            if not problems:  # columns are read with corpus.encoding, checked above
                problems += column_problems(file_columns(files, config["corpus"]), config["corpus"])
    else:
        problems += column_problems({"the sotu corpus": SOTU_COLUMNS}, config["corpus"])
    variants = {name: variant_settings(config, name) for name in config["variants"]}
    problems += licence_problems(
        [v["base"] for v in variants.values()], config["model"]["accept_licences"]
    )
    for fmt in dict.fromkeys(v["completion_format"] for v in variants.values()):
        problems += completion_problems(fmt)
    task = config["task"]
    problems += prompt_problems(task) + label_problems(task) + preference_problems(task)
    problems += unknown_prompt_columns(config) + threshold_problems(config["evaluation"])
    problems += variant_name_problems(config["variants"]) + base_problems(config)
    try:
        fractions = split_fractions(config["split"])
    except ValueError as error:
        problems.append(str(error))
    else:
        if config["evaluation"]["perplexity"] and fractions["validation"] == 0:
            problems.append(
                "config evaluation.perplexity needs a validation split but split.validation is 0; "
                "give it a share or set evaluation.perplexity: false"
            )
    return problems + annotate_problems(config)


def unknown_prompt_columns(config: dict[str, Any]) -> list[str]:
    """A task.prompt field that is no column of the table prompts are built from."""
    try:
        fields = prompt_columns(config["task"])
    except ValueError:
        return []  # prompt_problems names an invalid template
    known = [*PROMPT_COLUMNS, *metadata_names(config["corpus"])]
    return [
        f"config task.prompt field {{{field}}} is no column of the corpus table (it has: "
        f"{', '.join(known)}); add it to corpus.metadata_columns, or write {{{{{field}}}}} for "
        "literal braces (e.g. JSON in the prompt)"
        for field in fields
        if not field.isdigit() and field not in known
    ]


def threshold_problems(evaluation: dict[str, Any]) -> list[str]:
    """evaluation.good_enough.threshold outside its metric's range (e.g. 70 for 0.70)."""
    metric = evaluation["good_enough"]["metric"]
    threshold = evaluation["good_enough"]["threshold"]
    low = 0 if metric in SHARE_METRICS else -1
    if threshold is None or low <= threshold <= 1:
        return []
    return [
        f"config evaluation.good_enough.threshold {threshold} is outside [{low}, 1], the range "
        f"of {metric}; write a share (0.70 for 70%)"
    ]


def variant_name_problems(variants: dict[str, Any]) -> list[str]:
    """Variant names that clash with the workflow's own folders under results/NAME/models/."""
    return [
        f"config variants.{name}: {name!r} is a folder the workflow writes under "
        f"results/NAME/models/ (reserved: {', '.join(RESERVED_VARIANT_NAMES)}); "
        "give the variant another name"
        for name in variants
        if name in RESERVED_VARIANT_NAMES
    ]


def base_problems(config: dict[str, Any]) -> list[str]:
    """Bases that cannot be what they claim: a missing local folder, an unreadable GGUF file."""
    bases = [config["model"]["base"]] + [v.get("base") for v in config["variants"].values()]
    problems = []
    for base in dict.fromkeys(b for b in bases if b):
        problem = missing_folder_problem(base)
        if problem is None and is_gguf_base(base):
            problem = gguf_problem(gguf_source(base))
        if problem is not None:
            problems.append(problem)
    return problems


def file_columns(files: list[str], settings: dict[str, Any]) -> dict[str, list[str]]:
    """{file: its columns} (peek_columns); a file whose columns cannot be read is left to ingest,
    which names what is wrong with it."""
    columns = {}
    for path in files:
        try:
            columns[path] = peek_columns(path, settings)
        except (OSError, ValueError):
            continue
    return columns


def configured_columns(settings: dict[str, Any]) -> dict[str, str]:
    """{column: the config key naming it} for every column each corpus record must have."""
    keys = {
        settings["text_column"]: "corpus.text_column",
        settings["id_column"]: "corpus.id_column",
        settings["group_column"]: "corpus.group_column",
    }
    keys.update({c: "corpus.metadata_columns" for c in settings["metadata_columns"]})
    keys.update(
        {
            spec["from"]: f"corpus.derived_columns.{name}.from"
            for name, spec in settings["derived_columns"].items()
        }
    )
    return {column: key for column, key in keys.items() if column}


def column_problems(columns_of: dict[str, list[str]], settings: dict[str, Any]) -> list[str]:
    """A CSV/TSV header naming a column twice, and a configured column that no corpus file has
    (a typo there would reject every record as missing_column and fail later, misleadingly)."""
    problems = []
    for source, columns in columns_of.items():
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            problems.append(
                f"corpus file {source} line 1: column(s) {repeated} appear twice in the header; "
                "rename or remove one"
            )
    found = {c for columns in columns_of.values() for c in columns}
    has = ", ".join(sorted(found)) or "none"
    for column, key in configured_columns(settings).items():
        if column not in found:
            problems.append(
                f"config {key}: column {column!r} is in no corpus file (they have: {has}); "
                "fix the name"
            )
    return problems
