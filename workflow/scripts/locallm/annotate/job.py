"""The annotate job: the chosen model over one shard of the annotation input, resumable in chunks.

The shard's rows are cut into chunks of annotate.chunk_rows; each finished chunk is written
(atomically) to a folder outside the job's output, so a killed job's rerun loads the model, skips
the chunks already done and continues: no row lost or repeated. Predictions come from the same
path as the infer job's (locallm.infer.predict.predict_rows).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from locallm.code_version import code_version
from locallm.infer.predict import generation_settings, shard_rows
from locallm.logs import get_logger
from locallm.tables import read_table, write_table

log = get_logger(__name__)

ENGINE = "transformers"  # the library that computed the predictions


def run_key(
    choice: dict[str, Any], model: dict[str, Any], settings: dict[str, Any], seed: int
) -> str:
    """A digest of what shapes a prediction: a chunk made under another key is redone."""
    what = {
        "variant": choice["variant"],
        "stage": choice["stage"],
        "model": model,
        "settings": settings,
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def chunk_path(folder: Path, index: int) -> Path:
    return folder / f"chunk_{index:06d}.parquet"


def finished_chunk(path: Path, doc_ids: list[str], key: str) -> pd.DataFrame | None:
    """A chunk written before for these rows under this key, else None (it is redone)."""
    if not path.exists():
        return None
    done = read_table(path)
    if done["doc_id"].astype(str).tolist() != doc_ids or set(done["run_key"]) != {key}:
        log.info("%s: made for other rows or settings; redone", path)
        return None
    return done


def fewshot_examples_of(
    stage: str, train: str | None, test: str | None, task: dict, k: int, seed: int
) -> pd.DataFrame:
    """The few-shot stage's examples: the very ones its evaluation drew (same seed, same exclusion
    of the test split), so the annotating stage is the evaluated one."""
    if stage != "fewshot":
        return pd.DataFrame()
    from locallm.task.prompts import fewshot_examples

    excluded = read_table(test, columns=["doc_id"])["doc_id"].astype(str).tolist()
    return fewshot_examples(read_table(train), task, k, seed, exclude=excluded)


def annotate_shard(
    *,
    table: str | Path,
    choice: str | Path,
    output: str | Path,
    partial_dir: str | Path,
    shard: int,
    shards: int,
    chunk_rows: int,
    settings: dict[str, Any],
    task: dict[str, Any],
    models: dict[str, dict[str, Any]],
    seed: int,
    repo: str | Path,
    train: str | None = None,
    test: str | None = None,
    threads: int = 1,
) -> None:
    """Annotate one shard (every `shards`-th row of the input) with the chosen variant x stage."""
    import torch

    from locallm.infer.predict import load_for_inference, predict_rows
    from locallm.model.loading import resolve_base_path
    from locallm.model.precision import inference_dtype

    torch.set_num_threads(max(1, threads))
    chosen = json.loads(Path(choice).read_text())
    variant, stage = chosen["variant"], chosen["stage"]
    model_files = models[f"{variant}/{stage}"]
    rows = shard_rows(read_table(table), shard, shards)
    key = run_key(chosen, model_files, settings, seed)
    folder = Path(partial_dir)
    folder.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, len(rows), chunk_rows))
    log.info("%s/%s shard %d: %d rows in %d chunk(s) of %d", variant, stage, shard, len(rows),
             len(starts), chunk_rows)  # fmt: skip
    dtype = inference_dtype(settings["precision"])
    base_path = resolve_base_path(model_files["model"], built_dir=model_files["base"])
    model = tokenizer = None
    examples = fewshot_examples_of(stage, train, test, task, settings["fewshot_k"], seed)
    chunks, done, started = [], 0, time.monotonic()
    fresh_rows = 0
    for index, start in enumerate(starts):
        part = rows.iloc[start : start + chunk_rows].reset_index(drop=True)
        path = chunk_path(folder, index)
        ids = part["doc_id"].astype(str).tolist()
        finished = finished_chunk(path, ids, key)
        if finished is None:
            if model is None:
                model, tokenizer = load_for_inference(
                    model_files["model"], base_path, model_files["adapter"], dtype, settings
                )
            predicted = predict_rows(model, tokenizer, part, task, examples, settings, seed)
            finished = pd.concat([part[["doc_id"]], predicted], axis=1).assign(run_key=key)
            write_table(finished, path)
            fresh_rows += len(part)
        else:
            log.info("chunk %d: %d rows done before; kept", index, len(part))
        chunks.append(finished)
        done += len(part)
        elapsed = time.monotonic() - started
        rate = fresh_rows / elapsed if elapsed > 0 and fresh_rows else float("nan")
        left = (len(rows) - done) / rate if rate == rate and rate > 0 else float("nan")
        log.info("rows %d of %d done; %.2f rows/s; about %.0f s left", done, len(rows), rate, left)
    labels = task["labels"]
    predictions = (
        pd.concat(chunks, ignore_index=True)
        if chunks
        else pd.DataFrame(columns=["doc_id", "parsed_label", "run_key"])
    )
    annotated = pd.DataFrame({"doc_id": rows["doc_id"].astype(str)})
    annotated["predicted_label"] = predictions["parsed_label"].astype("string").to_numpy()
    for label in labels:
        column = f"prob_{label}"
        annotated[column] = predictions[column].to_numpy(float) if column in predictions else None
    prob_columns = [f"prob_{label}" for label in labels]
    if len(annotated) and "vote_share" not in predictions:
        annotated["confidence"] = annotated[prob_columns].to_numpy(float).max(axis=1)
    else:
        annotated["confidence"] = predictions.get("vote_share", pd.Series(dtype=float)).to_numpy()
    annotated["text_cut"] = predictions.get("text_cut", pd.Series(dtype=bool)).to_numpy(bool)
    annotated["variant"], annotated["stage"] = variant, stage
    annotated["model"] = str(base_path)
    annotated["adapter"] = model_files["adapter"]
    annotated["engine"] = ENGINE
    for name, value in generation_settings(settings, seed, dtype).items():
        annotated[name] = value
    annotated["code_version"] = code_version(repo)
    annotated["run_key"] = key
    write_table(annotated, output)
    shutil.rmtree(folder, ignore_errors=True)
