"""Problems of the annotate settings found when the DAG is built (torch-free)."""

from __future__ import annotations

from typing import Any

from locallm.data.sources import corpus_paths

CORPUS = "corpus"
# Columns annotation adds beside the corpus metadata (passages.parquet); a metadata column of the
# same name would be overwritten or suffixed by the join.
ANNOTATION_COLUMNS = (
    "document_id", "split", "origin", "sampled", "predicted_label", "confidence", "text_cut",
    "variant", "stage", "model", "adapter", "engine", "code_version", "run_key", "chosen_by",
    "stage_good_enough",
)  # fmt: skip


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
    clash = sorted(set(columns) & set(ANNOTATION_COLUMNS))
    if config["task"]["kind"] == "classify" and clash:
        problems.append(
            f"config corpus.metadata_columns / derived_columns: {clash} clash with the columns "
            f"annotation writes ({', '.join(ANNOTATION_COLUMNS)}); rename them in the data"
        )
    patterns = [entry for entry in settings["input"] if entry != CORPUS]
    if patterns:
        try:
            corpus_paths(patterns)
        except (OSError, ValueError) as error:
            problems.append(f"config annotate.input: {error}")
    return problems
