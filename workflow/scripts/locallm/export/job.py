"""The export job: one variant x stage as model.gguf, Modelfile, README.md and a label check.

The check is the proof that the file is the model: the GGUF is loaded back by transformers (its own
tokenizer included) and asked the same questions as the folder it was written from; the share of
equal labels is recorded, and a 16- or 8-bit file below export.min_agreement fails the job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from locallm.export.gguf_file import write_gguf
from locallm.export.ollama import modelfile, readme
from locallm.logs import get_logger, warn
from locallm.model.facts import context_length, model_card_licence
from locallm.tables import atomic_dir, read_table, write_json, write_text, write_tsv

log = get_logger(__name__)

# Weight types held to export.min_agreement; 4-bit files are checked and reported only.
HELD_TO_AGREEMENT = ("f16", "q8_0")


def ollama_name(variant: str, stage: str) -> str:
    """A model name Ollama accepts: lower case letters, digits, `-` and `_`."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in f"{variant}-{stage}").lower()


def classify_labels(
    model, tokenizer, rows: Sequence[Mapping], task: Mapping, examples: Sequence[Mapping],
    inference: Mapping[str, Any],
) -> pd.DataFrame:  # fmt: skip
    """The infer job's classify predictions (label log-likelihoods) for `rows`."""
    from locallm.infer.predict import fit_to_context, predict

    settings = {**inference, "mode": "classify", "max_cut_share": 1.0}
    fitted = fit_to_context(model, tokenizer, rows, dict(task), examples, settings)
    conversations = fitted.conversations
    return predict(model, tokenizer, conversations, settings, list(task["labels"]), seed=0)


def label_agreement(
    model_dir: str | os.PathLike,
    gguf_path: str | os.PathLike,
    rows: pd.DataFrame,
    task: Mapping[str, Any],
    examples: Sequence[Mapping],
    inference: Mapping[str, Any],
    trust_remote_code: bool = False,
) -> pd.DataFrame:
    """Per row: the label of the model folder and of the GGUF file (loaded by transformers), and
    the largest difference between their label log-likelihoods."""
    import torch

    from locallm.model.gguf_files import distinct_pad, load_gguf
    from locallm.model.loading import load_stage_model

    settings = {"method": "lora", "trust_remote_code": trust_remote_code}
    model, tokenizer = load_stage_model(settings, str(model_dir), None, dtype=torch.float32)
    records = rows.to_dict("records")
    reference = classify_labels(model, tokenizer, records, task, examples, inference)
    del model
    gguf_model, gguf_tokenizer = load_gguf(gguf_path)
    distinct_pad(gguf_tokenizer)
    exported = classify_labels(gguf_model, gguf_tokenizer, records, task, examples, inference)
    columns = [f"loglik_{label}" for label in task["labels"]]
    scores = reference[columns].to_numpy()
    delta = abs(scores - exported[columns].to_numpy()).max(axis=1)
    # How far the model's best label led the next: a flip at a small margin is a near tie.
    ordered = np.sort(scores, axis=1)
    margin = ordered[:, -1] - ordered[:, -2] if scores.shape[1] > 1 else np.inf
    return pd.DataFrame(
        {
            "doc_id": rows["doc_id"].astype(str).to_numpy(),
            "label_model": reference["parsed_label"].to_numpy(),
            "label_gguf": exported["parsed_label"].to_numpy(),
            "same": (reference["parsed_label"] == exported["parsed_label"]).to_numpy(),
            "max_abs_loglik_diff": delta,
            "margin_model": margin,
        }
    )


def export_model(
    *,
    model_dir: str | os.PathLike,
    output: str | os.PathLike,
    settings: Mapping[str, Any],
    task: Mapping[str, Any],
    inference: Mapping[str, Any],
    model_settings: Mapping[str, Any],
    facts: Mapping[str, Any],
    table: str | os.PathLike,
    examples_table: str | os.PathLike | None = None,
    seed: int = 0,
    threads: int = 1,
) -> None:
    """Write the model at `model_dir` into the folder `output`; check its labels (see module)."""
    import torch

    from locallm.model.loading import load_tokenizer, local_model_dir
    from locallm.task.prompts import fewshot_examples

    torch.set_num_threads(max(1, threads))
    model_dir = Path(local_model_dir(str(model_dir), dict(model_settings)))
    rows = read_table(table)
    examples: list[dict] = []
    if examples_table is not None:
        examples = fewshot_examples(
            read_table(examples_table), dict(task), inference["fewshot_k"], seed,
            exclude=rows["doc_id"].astype(str).tolist(),
            shortest=inference["fewshot_shortest"],
        ).to_dict("records")  # fmt: skip
    tokenizer = load_tokenizer(str(model_dir), dict(model_settings))
    config = json.loads((model_dir / "config.json").read_text())
    context = context_length(config) or 2048
    facts = {
        **facts,
        "name": f"{facts['variant']}-{facts['stage']} ({Path(str(facts['base'])).name})",
        "licence": facts.get("licence") or model_card_licence(model_dir),
        "context_length": context,
        "weight_type": settings["type"],
        "labels": list(task["labels"] or []),
        "fewshot_doc_ids": [str(e["doc_id"]) for e in examples] or None,
    }
    facts["description"] = (
        f"locallm export of variant {facts['variant']} at stage {facts['stage']}; "
        f"task labels: {', '.join(facts['labels']) or 'free text'}"
    )
    with atomic_dir(output) as folder:
        gguf_path = folder / "model.gguf"
        gguf_facts = {k: v for k, v in facts.items() if k not in ("weight_type",)}
        facts["tensor_types"] = write_gguf(model_dir, gguf_path, settings["type"], gguf_facts)
        write_text(modelfile(tokenizer, task, context, examples), folder / "Modelfile")
        check_rows = settings["check_rows"]
        if task["kind"] == "classify" and check_rows != 0:
            checked = rows if check_rows is None else rows.head(check_rows)
            agreement = label_agreement(
                model_dir, gguf_path, checked, task, examples, inference,
                model_settings["trust_remote_code"],
            )  # fmt: skip
            write_tsv(agreement, folder / "agreement.tsv")
            share = float(agreement["same"].mean()) if len(agreement) else 1.0
            facts["agreement"], facts["checked_rows"] = share, len(agreement)
            message = (
                f"{settings['type']}: {share:.1%} of {len(agreement)} labels equal to the model "
                f"folder's; max |log-lik diff| {agreement['max_abs_loglik_diff'].max():.4f}"
            )
            if settings["type"] in HELD_TO_AGREEMENT and share < settings["min_agreement"]:
                flipped = agreement[~agreement["same"]]
                log.error("labels that differ:\n%s", flipped.head(50).to_string(index=False))
                raise ValueError(
                    f"{message}: below export.min_agreement {settings['min_agreement']} (the rows "
                    "that differ are in this log, with the model's margin between its top two "
                    "labels); f16 keeps the weights closest to the model"
                )
            log.info(message)
        elif task["kind"] == "classify":
            warn(log, "export.check_rows is 0: the exported labels are not checked")
        write_text(readme(facts, task, ollama_name(facts["variant"], facts["stage"])),
                   folder / "README.md")  # fmt: skip
        write_json(facts, folder / "export_info.json")
