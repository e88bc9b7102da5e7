"""Problems of the annotate settings found when the DAG is built (torch-free)."""

from __future__ import annotations

from typing import Any

from locallm.data.sources import corpus_paths

CORPUS = "corpus"


def annotate_problems(config: dict[str, Any]) -> list[str]:
    """One line per problem of `annotate` (and the retired inference.input), naming the fix."""
    problems = []
    if config["inference"]["input"] != "test":
        problems.append(
            f"config inference.input is {config['inference']['input']!r}: predicting a user's "
            "table moved to annotation; set inference.input: test and list the files under "
            "annotate.input (e.g. `annotate: {input: [corpus, 'new/*.csv']}`); they are "
            "read with the corpus's readers and checks, and annotated by the chosen stage"
        )
    settings = config["annotate"]
    use = settings["use"]
    if use != "decision":
        if use["variant"] not in config["variants"]:
            problems.append(
                f"config annotate.use.variant {use['variant']!r} is not a variant "
                f"(variants: {', '.join(config['variants'])})"
            )
        if use["stage"] not in config["inference"]["stages"]:
            problems.append(
                f"config annotate.use.stage {use['stage']!r} is not in inference.stages "
                f"{config['inference']['stages']}; the stage must be evaluated to be used"
            )
    columns = config["corpus"]["metadata_columns"] + list(config["corpus"]["derived_columns"])
    for column in settings["estimate_by"]:
        if column not in columns:
            problems.append(
                f"config annotate.estimate_by names {column!r}, which is not a corpus metadata or "
                f"derived column ({', '.join(columns) or 'none'})"
            )
    patterns = [entry for entry in settings["input"] if entry != CORPUS]
    if patterns:
        try:
            corpus_paths(patterns)
        except (OSError, ValueError) as error:
            problems.append(f"config annotate.input: {error}")
    return problems
