"""Throughput (documents/s) of MinHash, LSH dedup and the filter rules on the demo corpus shards.

Usage (from the repository root, after `snakemake --cores 2 results/demo/corpus/ingest_report.tsv`):

    python performance/data_throughput.py [--config config/config.yaml] [--baseline-docs 2000]

Baseline side by side: datasketch's MinHash, one `update` per shingle (the usual Python loop) and
its `update_batch`, on the same normalised shingles, against locallm's vectorised signatures.
Timings are CPU seconds, the best of `--repeats` runs (the machine may be shared).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import pandas as pd  # noqa: E402
from datasketch import MinHash  # noqa: E402
from locallm.config import load_config  # noqa: E402
from locallm.data.dedup import find_duplicates  # noqa: E402
from locallm.data.minhash import normalise, signature_table  # noqa: E402
from locallm.filtering.filters import LengthFilter, apply_filters  # noqa: E402
from locallm.filtering.gopher import GopherQualityFilter, GopherRepetitionFilter  # noqa: E402
from locallm.filtering.shard import filters_from  # noqa: E402


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """Shortest CPU time of `repeats` runs of single-threaded code.

    CPU time, not wall time: on a machine shared with other jobs the wall time mostly measures the
    others; all steps here run in one thread, so CPU time is what a quiet machine would show.
    """
    times = []
    for _ in range(repeats):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return min(times)


def datasketch_signatures(texts: list[str], settings: dict, batch: bool) -> list[MinHash]:
    """The baseline: one datasketch MinHash per document over the same word n-gram shingles."""
    n, num_perm = settings["ngram"], settings["bands"] * settings["rows"]
    out = []
    for text in texts:
        tokens = normalise(text, settings).split()
        shingles = [
            " ".join(tokens[i : i + n]).encode() for i in range(max(len(tokens) - n + 1, 1))
        ]
        m = MinHash(num_perm=num_perm)
        if batch:
            m.update_batch(shingles)
        else:
            for shingle in shingles:
                m.update(shingle)
        out.append(m)
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--corpus", default="results/demo/corpus", help="folder of corpus shards")
    parser.add_argument("--baseline-docs", type=int, default=2000, help="documents for baselines")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    shards = sorted(Path(args.corpus).glob("*.parquet"))
    if not shards:
        sys.exit(
            f"no corpus shards in {args.corpus}/; build them first with\n"
            "    snakemake --cores 2 results/demo/corpus/ingest_report.tsv"
        )
    config = load_config(args.config)
    docs = pd.concat([pd.read_parquet(p) for p in shards], ignore_index=True)
    dedup, filters = config["dedup"], config["filter"]
    sample = docs["text"].head(args.baseline_docs).tolist()
    chars = docs["text"].str.len().sum() / 1e6
    print(f"{len(docs)} documents from {len(shards)} shards, {chars:.1f} M characters")

    rows = []

    def measure(name: str, run: Callable[[], object], n_docs: int) -> None:
        seconds = best_seconds(run, args.repeats)
        rows.append(
            {"step": name, "docs": n_docs, "seconds": seconds, "docs_per_s": n_docs / seconds}
        )

    measure("minhash: locallm vectorised", lambda: signature_table(docs, dedup), len(docs))
    measure(
        "minhash: locallm vectorised (sample)",
        lambda: signature_table(docs.head(len(sample)), dedup),
        len(sample),
    )
    measure(
        "minhash: datasketch update loop",
        lambda: datasketch_signatures(sample, dedup, False),
        len(sample),
    )
    measure(
        "minhash: datasketch update_batch",
        lambda: datasketch_signatures(sample, dedup, True),
        len(sample),
    )
    table = signature_table(docs, dedup)
    measure("dedup: LSH + union-find (all docs)", lambda: find_duplicates(table, dedup), len(docs))

    quality = {k: v for k, v in filters["gopher_quality"].items() if k != "enabled"}
    repetition = {k: v for k, v in filters["gopher_repetition"].items() if k != "enabled"}
    for name, rule in [
        ("filter: length", LengthFilter(filters["min_chars"], filters["max_chars"])),
        ("filter: gopher_quality", GopherQualityFilter(**quality)),
        ("filter: gopher_repetition", GopherRepetitionFilter(**repetition)),
    ]:
        measure(name, lambda rule=rule: apply_filters(docs, [rule]), len(docs))
    measure(
        "filter: all rules (first wins)",
        lambda: apply_filters(docs, filters_from(filters)),
        len(docs),
    )

    result = pd.DataFrame(rows)
    loop = result.loc[result["step"] == "minhash: datasketch update loop", "docs_per_s"].iloc[0]
    result["x_datasketch_loop"] = (result["docs_per_s"] / loop).where(
        result["step"].str.startswith("minhash")
    )
    print(
        result.to_string(
            index=False,
            formatters={
                "seconds": "{:.2f}".format,
                "docs_per_s": "{:,.0f}".format,
                "x_datasketch_loop": "{:.1f}".format,
            },
        )
    )
    return result


if __name__ == "__main__":
    main()
