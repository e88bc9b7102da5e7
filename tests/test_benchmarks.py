"""Every benchmark script runs on tiny input, so none can rot unnoticed (speed is not tested)."""

import importlib.util

import pandas as pd
from conftest import ROOT
from locallm.base_model import save_base, tiny_model, train_tokenizer
from locallm.config import load_config
from locallm.tables import write_table
from locallm.tasks import sft_table


def benchmark(name: str):
    """The module benchmarks/<name>.py, imported by path (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
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


def test_critical_path_weighs_each_rule_by_its_slowest_job(tmp_path):
    seconds = {"a/one.tsv": 10.0, "b/x.tsv": 5.0, "b/y.tsv": 7.0, "c/one.tsv": 30.0, "d/one.tsv": 1}
    for path, s in seconds.items():
        (tmp_path / "benchmarks" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "benchmarks" / path).write_text(f"s\th:m:s\n{s}\t0:00:{s:02.0f}\n")
    log = tmp_path / "run.log"
    log.write_text(
        "[Wed Dec  2 13:33:09 2026]\nrule a:\n    jobid: 1\n"
        "[Wed Dec  2 13:33:19 2026]\nrule c:\n    jobid: 2\n"
        "[Wed Dec  2 13:33:49 2026]\nFinished jobid: 1 (Rule: a)\n"
        "[Wed Dec  2 13:34:09 2026]\nFinished jobid: 2 (Rule: c)\n"
    )
    # a -> b -> d and c -> d: the chain through c (30 + 1) beats a -> b (10 + 7 + 1).
    nodes = "".join(f'{i}[label = "{rule}"];\n' for i, rule in enumerate("abcd"))
    dot = nodes + "0 -> 1\n1 -> 3\n2 -> 3\n"
    row = benchmark("critical_path").summary(tmp_path, log, rulegraph=dot)
    assert row["critical_path_s"] == 31.0 and row["path"] == "c → d"
    assert row["serial_s"] == 53.0 and row["jobs"] == 5
    assert row["wall_s"] == 60.0
    assert row["overlapping_s"] == 30.0  # a and c both ran from 13:33:19 to 13:33:49


def test_dryrun_speed_plans_a_tiny_corpus_with_the_current_and_a_baseline_workflow(capsys):
    rows = benchmark("dryrun_speed").main(["--sizes", "3", "--repeats", "1", "--baseline", "HEAD"])
    assert [r["workflow"] for r in rows] == ["current", "baseline HEAD"]
    assert all(r["shards"] == 3 and r["jobs"] > 3 and r["cpu"] > 0 for r in rows)
    assert "linear bound" in capsys.readouterr().out


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
    memory = result["memory"]
    assert memory["peak_rss_mb"] >= memory["rss_after_load_mb"] > 0
    assert memory["estimate_mb"] > 0 and memory["ratio"] > 0
    printed = capsys.readouterr().out
    assert "| forward (classify)" in printed and "peak RSS" in printed
    assert "load average" in printed
