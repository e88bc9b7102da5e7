"""Every benchmark script runs on tiny input, so none can rot unnoticed (speed is not tested)."""

import importlib.util

import numpy as np
import pandas as pd
from conftest import ROOT
from locallm.config import load_config
from locallm.model.tiny import save_base, tiny_model, train_tokenizer
from locallm.tables import write_table
from locallm.task.prompts import sft_table


def benchmark(name: str):
    """The module performance/<name>.py, imported by path (performance/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "performance" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_inference_speed_runs_on_two_prompts_of_the_configured_task(capsys):
    figures = benchmark("inference_speed").main(
        [
            "--prompts", "2", "--classify-prompts", "2", "--train-passages", "40",
            "--hidden", "32", "--layers", "1", "--max-new-tokens", "4", "--batch-size", "2",
            "--train-steps", "2", "--threads", "1",
        ]
    )  # fmt: skip
    generation = figures["generation"]
    assert 0 < generation["prefill_share"] <= 1.5  # prefill alone is about the batched run or less
    assert generation["ratio"] > 0 and generation["bound"] > 0
    assert figures["classify"]["classify"]["rows"] == 2
    printed = capsys.readouterr().out
    assert "task: sotu_type (spoken, written)" in printed  # the demo config's task, not a fixed one
    assert "against its bound" in printed


def test_data_throughput_runs_on_a_tiny_corpus_shard(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = [f"The union is strong, and the budget of year {i} is balanced. " * 8 for i in range(6)]
    write_table(
        pd.DataFrame({"doc_id": [f"d{i}" for i in range(6)], "group_id": "g", "text": texts}),
        corpus / "000.parquet",
    )
    result = benchmark("data_throughput").main(
        ["--corpus", str(corpus), "--baseline-docs", "3", "--repeats", "1"]
    )
    loop = result.set_index("step").loc["minhash: datasketch update loop"]
    assert loop["docs"] == 3 and loop["x_datasketch_loop"] == 1.0
    assert (result["docs_per_s"] > 0).all()


def test_sft_throughput_runs_packed_and_unpacked_with_the_packing_bound(tmp_path, capsys):
    task = load_config(ROOT / "config" / "config.yaml")["task"]
    labels = ["spoken", "written"] * 6
    docs = pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(12)],
            "group_id": [f"g{i}" for i in range(12)],
            "text": [f"passage {i} " * (3 + 4 * (i % 3)) for i in range(12)],
            "sotu_type": labels,
        }
    )
    tokenizer = train_tokenizer(docs.text.tolist() + labels, vocab_size=300)
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 4,
            "context_length": 512}  # fmt: skip
    save_base(tiny_model(tokenizer, tiny, seed=0), tokenizer, tmp_path / "base")
    write_table(sft_table(docs, task), tmp_path / "sft.parquet")
    table = benchmark("sft_throughput").main(
        ["--base", str(tmp_path / "base"), "--sft", str(tmp_path / "sft.parquet"),
         "--examples", "12", "--steps", "1", "--threads", "1"]
    )  # fmt: skip
    packed, unpacked = table.iloc[0], table.iloc[1]
    assert packed.packing and not unpacked.packing
    assert packed.sequences < unpacked.sequences  # examples were packed together
    assert 0 < unpacked.real_token_share <= 1 and 0 < packed.real_token_share <= 1
    expected_bound = packed.real_token_share / unpacked.real_token_share
    assert abs(packed.bound - expected_bound) < 0.01
    assert "against its bound" in capsys.readouterr().out


def test_critical_path_weighs_each_rule_by_its_slowest_job(tmp_path, capsys):
    seconds = {"a/one.tsv": 10.0, "b/x.tsv": 5.0, "b/y.tsv": 7.0, "c/one.tsv": 30.0, "d/one.tsv": 1}
    for path, s in seconds.items():
        (tmp_path / "benchmarks" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "benchmarks" / path).write_text(
            f"s\th:m:s\tcpu_time\n{s}\t0:00:{s:02.0f}\t{s / 2}\n"
        )
    log = tmp_path / "run.log"
    log.write_text(
        "[Wed Dec  2 13:33:09 2026]\nrule a:\n    benchmark: benchmarks/a/one.tsv\n    jobid: 1\n"
        "[Wed Dec  2 13:33:19 2026]\nrule c:\n    benchmark: benchmarks/c/one.tsv\n    jobid: 2\n"
        "[Wed Dec  2 13:33:49 2026]\nFinished jobid: 1 (Rule: a)\n"
        "[Wed Dec  2 13:34:09 2026]\nFinished jobid: 2 (Rule: c)\n"
        "[Wed Dec  2 13:34:14 2026]\nrule d:\n    benchmark: benchmarks/d/one.tsv\n    jobid: 3\n"
        "[Wed Dec  2 13:34:15 2026]\nFinished jobid: 3 (Rule: d)\n"
    )
    # a -> b -> d and c -> d: the chain through c (30 + 1) beats a -> b (10 + 7 + 1).
    nodes = "".join(f'{i}[label = "{rule}"];\n' for i, rule in enumerate("abcd"))
    dot = nodes + "0 -> 1\n1 -> 3\n2 -> 3\n"
    row = benchmark("critical_path").summary(tmp_path, log, rulegraph=dot)
    assert row["critical_path_s"] == 31.0 and row["path"] == "c → d"
    assert row["serial_s"] == 53.0 and row["jobs"] == 5
    assert row["wall_s"] == 66.0
    assert row["overlapping_s"] == 30.0  # a and c both ran from 13:33:19 to 13:33:49
    assert row["path_jobs"]["cpu_s"].tolist() == [15.0, 0.5]
    assert row["path_wait_s"] == 5.0  # d was ready at 13:34:09 and started at 13:34:14
    table = benchmark("critical_path").path_table([row, row])
    assert "| c | 30 | 15 | 0 | 30 | 15 | 0 |" in table
    assert "| **path** | 31 | 16 | 5 | 31 | 16 | 5 |" in table
    per_rule = benchmark("critical_path").rule_cpu_table([row])
    assert "| b | 2 | 6.0 |" in per_rule  # two jobs: 2.5 + 3.5 CPU s
    assert "| **all** | 5 | 26.5 |" in per_rule


def replay_log(events: list[tuple[int, str]]) -> str:
    """A Snakemake log: (second, text) events from 13:00:00 on, each under its own timestamp."""
    return "".join(
        f"[Wed Dec  2 13:{t // 60:02d}:{t % 60:02d} 2026]\n{text}\n" for t, text in events
    )


def job(rule: str, jobid: int, inputs: str, output: str, wildcards: str = "") -> str:
    lines = [f"localrule {rule}:"]
    if inputs:
        lines.append(f"    input: {inputs}")
    lines += [f"    output: {output}", f"    jobid: {jobid}"]
    if wildcards:
        lines.append(f"    wildcards: {wildcards}")
    return "\n".join(lines)


def test_schedule_replay_starts_the_training_chain_first_and_prints_the_bound(tmp_path, capsys):
    # The run started both base-stage infer jobs before the full variant's sft, which then ended
    # last; with sft prioritised it starts at once and evaluate follows it.
    log = tmp_path / "run.log"
    log.write_text(replay_log([
        (0, job("bootstrap_base", 1, "", "results/models/base")),
        (10, "Finished jobid: 1 (Rule: bootstrap_base)"),
        (10, job("infer", 2, "results/models/base", "a.parquet", "variant=full, stage=base")),
        (10, job("infer", 3, "results/models/base", "b.parquet", "variant=qlora_r8, stage=base")),
        (30, "Finished jobid: 3 (Rule: infer)"),
        (30, job("sft", 4, "results/models/base", "results/models/full/sft", "variant=full")),
        (40, "Finished jobid: 2 (Rule: infer)"),
        (80, "Finished jobid: 4 (Rule: sft)"),
        (80, job("evaluate", 5, "a.parquet, b.parquet, results/models/full/sft", "m.tsv")),
        (85, "Finished jobid: 5 (Rule: evaluate)"),
    ]))  # fmt: skip
    rows = benchmark("schedule_replay").main(
        [str(log), "--cores", "2", "--config", str(ROOT / "config" / "config.yaml")]
    )
    walls = [row["wall_s"] for row in rows]
    assert walls == [85.0, 85.0, 65.0]  # measured; the run's own order replayed; sft first
    # The longest chain (10 + 50 + 5) beats the core-seconds over 2 cores (115 / 2).
    assert rows[0]["bound_s"] == 65.0
    assert "lower bound" in capsys.readouterr().out


def test_bootstrap_speed_pretrains_in_both_dtypes_with_the_bound(tmp_path, capsys):
    texts = [f"The union is strong, and the budget of year {i} is balanced." for i in range(40)]
    write_table(pd.DataFrame({"text": texts}), tmp_path / "train.parquet")
    table = benchmark("bootstrap_speed").main(
        ["--train", str(tmp_path / "train.parquet"), "--steps", "2", "--threads", "1",
         "--config", str(ROOT / "config" / "test.yaml")]
    )  # fmt: skip
    assert table.dtype.tolist() == ["float32", "bfloat16"]
    assert (table.steps == 2).all() and (table.cpu_s > 0).all()
    assert table.ratio_cpu.iloc[0] == 1.0 and (table.bound == 2.0).all()
    assert table.final_loss.notna().all()
    assert "pretraining" in capsys.readouterr().out


def test_dryrun_speed_plans_a_tiny_corpus_with_the_current_and_a_baseline_workflow(capsys):
    rows = benchmark("dryrun_speed").main(["--sizes", "3", "--repeats", "1", "--baseline", "HEAD"])
    assert [r["workflow"] for r in rows] == ["current", "baseline HEAD"] * 2
    test_config, sized = rows[:2], rows[2:]
    assert all("shards" not in r and r["jobs"] > 30 and r["cpu"] > 0 for r in test_config)
    assert all(r["shards"] == 3 and r["jobs"] > 3 and r["cpu"] > 0 for r in sized)
    printed = capsys.readouterr().out
    assert "linear bound" in printed and "config/test.yaml" in printed and "load average" in printed


def test_smollm2_speed_compares_each_pair_in_turn_and_the_qlora_rss(tmp_path, capsys):
    task = load_config(ROOT / "config" / "config.yaml")["task"]
    labels = ["spoken", "written"] * 4
    docs = pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(8)],
            "group_id": [f"g{i}" for i in range(8)],
            "text": [f"The union is strong in year {i}. " * (1 + 3 * (i % 3)) for i in range(8)],
            "sotu_type": labels,
        }
    )
    tokenizer = train_tokenizer(docs.text.tolist() + labels, vocab_size=300)
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 4,
            "context_length": 256}  # fmt: skip
    save_base(tiny_model(tokenizer, tiny, seed=0), tokenizer, tmp_path / "base")
    write_table(sft_table(docs, task), tmp_path / "sft.parquet")
    result = benchmark("smollm2_speed").main(
        ["--base", str(tmp_path / "base"), "--sft", str(tmp_path / "sft.parquet"),
         "--threads", "1", "--batch", "2", "--seq", "16", "--max-length", "128",
         "--steps", "2", "--warmup", "0"]
    )  # fmt: skip
    table = result["speed"]
    assert table.comparison.unique().tolist() == [
        "forward (classify)", "qlora step", "packing", "lora step",
        "lora step, checkpointing", "full step",
    ]  # fmt: skip
    variants = table.groupby("comparison", sort=False).variant.apply(list).to_dict()
    assert variants["qlora step"] == ["float32", "bfloat16, 4-bit float32", "bfloat16"]
    assert variants["full step"] == ["float32", "bfloat16"]
    assert variants["packing"] == ["padded", "packed"]
    assert (table.tokens > 0).all() and (table.ratio_cpu > 0).all()
    firsts = table.groupby("comparison", sort=False).head(1)
    assert (firsts.ratio_cpu == 1.0).all()
    packing = table[table.comparison == "packing"].set_index("variant")
    # Both ran the same steps; packed rows hold more real tokens than padded examples.
    assert packing.tokens["packed"] > packing.tokens["padded"]
    assert packing.real_token_share["packed"] > packing.real_token_share["padded"]
    bound = packing.real_token_share["packed"] / packing.real_token_share["padded"]
    assert abs(packing.bound["packed"] - bound) < 0.01
    assert (table[table.comparison.str.endswith("step")].bound.iloc[1:].isin([1.0, 2.0])).all()
    printed = capsys.readouterr().out
    assert "| forward (classify)" in printed
    assert "load average" in printed


def test_smollm2_memory_runs_an_sft_job_per_method_beside_the_host_estimate(tmp_path, capsys):
    texts = [f"The union is strong, and the budget of year {i} is balanced." for i in range(20)]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 4,
            "context_length": 128}  # fmt: skip
    save_base(tiny_model(tokenizer, tiny, seed=0), tokenizer, tmp_path / "base")
    table = benchmark("smollm2_memory").main(
        ["--base", str(tmp_path / "base"), "--shapes", "2x16", "--methods", "qlora", "full",
         "--steps", "1", "--threads", "1"]
    )  # fmt: skip
    assert table[["method", "shape"]].values.tolist() == [["qlora", "2x16"], ["full", "2x16"]]
    # Each phase was sampled, and the high-water mark is at least every phase's peak.
    phases = table[["imports_mb", "load_mb", "train_mb", "save_mb"]]
    assert (phases > 0).all().all()
    assert (table.peak_mb >= phases.max(axis=1)).all()
    assert (table.estimate_mb >= table.est_libraries_mb).all()
    assert ((table.ratio - table.peak_mb / table.estimate_mb).abs() < 0.01).all()
    assert "0.85-1.15" in capsys.readouterr().out


def test_smollm2_inference_compares_every_path_with_its_reference_on_a_tiny_base(tmp_path, capsys):
    texts = [f"The union is strong, and the budget of year {i} is balanced." for i in range(20)]
    tokenizer = train_tokenizer(texts, vocab_size=300)
    # bitsandbytes' CPU 4-bit path needs dimensions of 64 and more (the QLoRA rows).
    tiny = {"hidden_size": 64, "intermediate_size": 128, "num_layers": 1, "num_heads": 4,
            "context_length": 512}  # fmt: skip
    save_base(tiny_model(tokenizer, tiny, seed=0), tokenizer, tmp_path / "base")
    table = benchmark("smollm2_inference").main(
        ["--base", str(tmp_path / "base"), "--threads", "1", "--prompts", "2",
         "--classify-prompts", "3", "--max-new-tokens", "2", "--repeats", "1",
         "--batch-tokens", "300", "--max-chars", "250"]
    )  # fmt: skip
    assert len(table) == 11 and table.path.iloc[0].startswith("pipeline()")
    assert table.rows.tolist() == [2] * 6 + [3] * 5
    assert table.path.iloc[5].startswith("prefill only") and pd.isna(table.same_as_vs.iloc[5])
    assert (table.cpu_s > 0).all() and (table.ratio_cpu > 0).all()
    assert table.ratio_cpu.iloc[0] == 1.0 and table.same_as_vs.iloc[0] == "2/2"
    bf16 = table[table.path.str.contains("bfloat16")]
    assert len(bf16) == 4 and (bf16.bound == 2.0).all() and (bf16.bf16_ratio_cpu > 0).all()
    # float32 batched greedy generation answers what the pipeline answers on a tiny model.
    assert table.same_as_vs.iloc[1] == "2/2"
    printed = capsys.readouterr().out
    assert "generate_texts batched, static cache (bfloat16)" in printed
    assert "Batching's bound (pipeline CPU s / prefill CPU s)" in printed


def test_same_results_names_a_changed_table_and_sets_timings_apart(tmp_path, capsys):
    for run in ("before", "after"):
        (tmp_path / run / "eval").mkdir(parents=True)
        (tmp_path / run / "models" / "v" / "sft").mkdir(parents=True)
        (tmp_path / run / "eval" / "metrics.tsv").write_text("metric\tvalue\nf1\t0.5\n")
        (tmp_path / run / "models" / "v" / "sft" / "run_info.json").write_text(f'{{"s": "{run}"}}')
        (tmp_path / run / "logs.txt").write_text(run)  # not a result file
    same_results = benchmark("same_results")
    assert same_results.main([str(tmp_path / "before"), str(tmp_path / "after")]) == 0
    assert "models/v/sft/run_info.json" in capsys.readouterr().out  # listed as volatile
    (tmp_path / "after" / "eval" / "metrics.tsv").write_text("metric\tvalue\nf1\t0.6\n")
    assert same_results.main([str(tmp_path / "before"), str(tmp_path / "after")]) == 1
    assert "differs:     eval/metrics.tsv" in capsys.readouterr().out


def test_same_results_counts_a_table_equal_once_the_moved_folder_is_renamed(tmp_path, capsys):
    for run, root in (("before", "results/"), ("after", "results/test/")):
        (tmp_path / run).mkdir()
        frame = pd.DataFrame({"label": ["a", "b"], "model": [f"{root}models/base"] * 2})
        write_table(frame, tmp_path / run / "predictions.parquet")
    same_results = benchmark("same_results")
    args = [str(tmp_path / "before"), str(tmp_path / "after")]
    assert same_results.main(args) == 1  # the recorded model path moved
    assert same_results.main([*args, "--renamed", "results/", "results/test/"]) == 0
    assert same_results.main([*args, "--renamed", "results/", "results/demo/"]) == 1


def test_prefix_cache_benchmark_prints_ratio_and_bound_on_a_tiny_base(capsys):
    results = benchmark("prefix_cache").main(
        ["--prompts", "3", "--fewshot-k", "0", "1", "--chars", "120", "--threads", "1"]
    )
    assert [r["k"] for r in results] == [0, 1]
    assert results[1]["prefix_tokens"] > results[0]["prefix_tokens"]  # examples join the prefix
    assert all(r["agreement"] == 1.0 and r["bound"] >= 1 and r["ratio"] > 0 for r in results)
    assert "| bound |" in capsys.readouterr().out


def test_export_agreement_benchmark_reports_each_type_on_a_tiny_base():
    results = benchmark("export_agreement").main(
        ["--prompts", "3", "--types", "f16", "q4_0", "--chars", "120", "--threads", "1"]
    )
    assert [r["type"] for r in results] == ["f16", "q4_0"]
    assert results[0]["mb"] > results[1]["mb"]  # 4-bit blocks are smaller than float16
    assert results[0]["agreement"] == 1.0


def test_data_corpus_plants_exact_and_near_copies_in_a_corpus_of_the_asked_size(tmp_path):
    import json

    paths = benchmark("data_corpus").write_corpus(tmp_path, mb=4, files=3, outlets=5, seed=0)
    records = [json.loads(line) for path in paths for line in path.open()]
    texts = pd.Series([r["text"] for r in records])
    size = texts.str.encode("utf-8").str.len().sum()
    assert 4e6 <= size < 4e6 + 200_000  # stops at the first article past the size
    assert len({r["id"] for r in records}) == len(records)
    assert {r["outlet"] for r in records} <= {f"outlet{i:03d}" for i in range(5)}
    assert texts.duplicated().sum() >= 1  # exact reprints
    assert texts.str.endswith("Updated with a correction from the editors.").sum() >= 1


def test_data_half_watch_reads_each_job_peak_memory(tmp_path):
    import sys

    script = tmp_path / ".snakemake" / "scripts" / "tmpab12.fake_rule.py"
    script.parent.mkdir(parents=True)
    # A job that touches 200 MB, started by a parent process as Snakemake starts its jobs.
    script.write_text(
        "import time\nblock = bytearray(200 * 2**20)\n"
        "for i in range(0, len(block), 4096):\n    block[i] = 1\ntime.sleep(1)\n"
    )
    parent = f"import subprocess, sys; subprocess.run([sys.executable, {str(script)!r}])"
    code, wall, cpu, jobs = benchmark("data_half").watch(
        [sys.executable, "-c", parent], tmp_path / "log", env={}
    )
    fake = [job for job in jobs if job["job"] == "fake_rule"]
    assert code == 0 and wall >= 1 and cpu > 0
    assert len(fake) == 1 and fake[0]["peak_kb"] > 200 * 1024


def test_data_half_plan_lists_the_jobs_and_mem_mb_of_each_data_rule(tmp_path, capsys):
    benchmark("data_half").main(
        ["plan", "--mb", "40", "--workdir", str(tmp_path), "--shards", "4", "--files", "8"]
    )
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines()[2:]}
    assert rows["minhash"][0] == "4" and rows["dedup_bucket"][0] == "4" and rows["split"][0] == "1"


def test_estimate_coverage_runs_on_a_small_labelled_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    truth = rng.choice(["spoken", "written"], 300)
    # A model right 80% of the time.
    flipped = np.where(truth == "spoken", "written", "spoken")
    label = np.where(rng.random(300) < 0.8, truth, flipped)
    passages = pd.DataFrame(
        {"group_id": np.repeat(np.arange(30), 10), "sotu_type": truth, "predicted_label": label}
    )
    write_table(passages, tmp_path / "passages.parquet")
    summary = benchmark("estimate_coverage").main(
        ["--passages", str(tmp_path / "passages.parquet"), "--gold-groups", "6", "--draws", "5",
         "--bootstrap", "50", "--config", str(ROOT / "config" / "config.yaml")]
    )  # fmt: skip
    assert sorted(summary["method"].unique()) == ["gold", "model", "prediction_powered"]
    assert summary["coverage"].between(0, 1).all() and (summary["mean_width"] > 0).all()
    assert "model accuracy" in capsys.readouterr().out


def test_annotate_speed_runs_both_paths_on_a_tiny_model(tmp_path, capsys):
    from test_inference import TEXTS, rows_of, tiny_llama, tiny_tokenizer

    tokenizer = tiny_tokenizer()
    tiny_llama(tokenizer).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    write_table(pd.DataFrame(rows_of(TEXTS)), tmp_path / "rows.parquet")
    table = benchmark("annotate_speed").main(
        ["--base", str(tmp_path / "base"), "--table", str(tmp_path / "rows.parquet"),
         "--rows", "4", "--repeats", "1", "--threads", "1",
         "--config", str(ROOT / "config" / "test.yaml")]
    )  # fmt: skip
    assert table["path"].tolist() == ["evaluation path", "annotate job"]
    assert (table["rows"] == 4).all() and (table["rows_per_cpu_s"] > 0).all()
    printed = capsys.readouterr().out
    assert "machine:" in printed and "same labels on both paths: True" in printed
