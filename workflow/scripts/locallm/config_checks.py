"""Config problems that can be known before any job runs, checked when Snakemake builds the DAG.

The schema checks types and ranges; these checks need more than one key or a look at the files.
Each problem is one line naming the key and the fix, and all of them are reported at once.
"""

from __future__ import annotations

from typing import Any

from locallm.annotate.checks import annotate_problems
from locallm.data.sources import corpus_paths, settings_problems
from locallm.settings import split_fractions
from locallm.task.prompts import label_problems, preference_problems, prompt_problems


def config_problems(config: dict[str, Any]) -> list[str]:
    """Every problem of a config (with defaults filled in) found without running a job."""
    problems = settings_problems(config["corpus"])
    if config["corpus"]["source"] == "files":
        try:
            corpus_paths(config["corpus"]["paths"])
        except (OSError, ValueError) as error:
            problems.append(str(error))
    task = config["task"]
    problems += prompt_problems(task) + label_problems(task) + preference_problems(task)
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
