"""Rows per CPU second of the annotate job against the plain evaluation path, same model, same rows.

    python performance/annotate_speed.py --base results/models/converted/smollm2-135m-instruct \
        --table results/splits/test.parquet --rows 64 [--config config/smollm2.yaml] \
        [--adapter results/models/qlora_r16/sft] [--threads 2] [--repeats 2]

`evaluation path`: what the infer job does with the rows (locallm.infer.predict.predict_rows on all
of them at once, model loaded once). `annotate job`: locallm.annotate.job.annotate_shard over the
same rows (one shard, annotate.chunk_rows of the config), which adds the chunk files that make it
resumable, the table writes and the per-chunk batching. Model loading is timed apart and left out
of both rates. Repeats are interleaved; each row keeps the run with the fewest CPU seconds
(time.process_time, all threads). Also printed: the machine, and whether both paths gave the same
labels.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from locallm.annotate.job import annotate_shard
from locallm.config import load_config
from locallm.infer.predict import load_for_inference, predict_rows
from locallm.model.precision import inference_dtype
from locallm.tables import read_table, write_table


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"


def timed(run) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = run()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="a saved base model folder")
    parser.add_argument("--adapter", type=Path, help="a stage's adapter folder (optional)")
    parser.add_argument("--method", default="lora", help="the variant's training.method")
    parser.add_argument("--table", type=Path, required=True, help="rows with doc_id and text")
    parser.add_argument("--config", type=Path, default=Path("config/smollm2.yaml"))
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    task, settings = config["task"], dict(config["inference"])
    rows = read_table(args.table).head(args.rows).reset_index(drop=True)
    training = config["training"]
    model_settings = {"base": str(args.base), "method": args.method, "trust_remote_code": False}
    # The prompt format the config's variants use (chat template, or a base model's completion).
    model_settings |= {
        k: training[k] for k in ("chat_template", "prompt_format", "completion_format")
    }
    dtype = inference_dtype(settings["precision"])
    load_cpu, load_wall, (model, tokenizer) = timed(
        lambda: load_for_inference(model_settings, args.base, args.adapter, dtype, settings)
    )
    folder = Path(tempfile.mkdtemp(prefix="annotate_speed_"))
    write_table(rows, folder / "input.parquet")
    (folder / "choice.json").write_text(json.dumps({"variant": "v", "stage": "s"}))
    models = {"v/s": {"model": model_settings, "base": None,
                      "adapter": str(args.adapter) if args.adapter else None}}  # fmt: skip
    # The annotate job loads its own model: its load is measured and subtracted.
    best: dict[str, tuple[float, float]] = {}
    outputs = {}
    for repeat in range(args.repeats):
        cpu, wall, predicted = timed(
            lambda: predict_rows(model, tokenizer, rows, task, pd.DataFrame(), settings, 0)
        )
        outputs["evaluation path"] = predicted["parsed_label"].tolist()
        best["evaluation path"] = min(best.get("evaluation path", (cpu, wall)), (cpu, wall))
        output = folder / f"annotated{repeat}.parquet"
        cpu, wall, _ = timed(
            lambda output=output: annotate_shard(
                table=folder / "input.parquet", choice=folder / "choice.json", output=output,
                partial_dir=folder / "partial", shard=0, shards=1,
                chunk_rows=config["annotate"]["chunk_rows"], settings=settings, task=task,
                models=models, seed=0, repo=folder,
            )
        )  # fmt: skip
        cpu, wall = max(cpu - load_cpu, 1e-9), max(wall - load_wall, 1e-9)
        outputs["annotate job"] = read_table(output)["predicted_label"].tolist()
        best["annotate job"] = min(best.get("annotate job", (cpu, wall)), (cpu, wall))
    table = pd.DataFrame(
        [
            {
                "path": path,
                "rows": len(rows),
                "cpu_s": cpu,
                "wall_s": wall,
                "rows_per_cpu_s": len(rows) / cpu,
                "rows_per_s": len(rows) / wall,
            }
            for path, (cpu, wall) in best.items()
        ]  # fmt: skip
    )
    table["ratio_cpu"] = table["rows_per_cpu_s"] / table["rows_per_cpu_s"].iloc[0]
    print(f"machine: {machine()}; model load {load_cpu:.1f} CPU s ({load_wall:.1f} s wall)")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    same = outputs["evaluation path"] == outputs["annotate job"]
    print(f"same labels on both paths: {same}")
    return table


if __name__ == "__main__":
    main()
