"""Do the label-share intervals cover the truth? Many gold samples from a fully labelled corpus.

    python performance/estimate_coverage.py --passages results/annotate/passages.parquet
        [--label-column sotu_type] [--gold-groups 24] [--draws 200] [--bootstrap 300]
        [--config config/config.yaml]

The State of the Union corpus has the true label of every passage, so each label's true share in
the annotated population is known. Each draw takes `--gold-groups` groups (addresses) at random
(seeded) as the gold sample, as the test split is drawn, and computes the three 95% intervals of
locallm.annotate.estimator: the model's labels alone, the gold sample alone, prediction-powered.
Per method and label: coverage of the true share over the draws, mean width, mean bias of the point
estimate. Expected: prediction-powered near 0.95 and narrower than gold-only; the model's labels
biased where the model errs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from locallm.annotate.estimator import label_shares
from locallm.config import load_config
from locallm.evaluation.metrics import encode
from locallm.tables import read_table


def coverage(
    passages: pd.DataFrame,
    labels: list[str],
    label_column: str,
    gold_groups: int,
    draws: int,
    n_boot: int,
    seed: int,
) -> pd.DataFrame:
    """Per method and label: coverage of the true share, mean width, mean bias, over the draws."""
    predicted = encode(passages["predicted_label"].tolist(), labels, allow_unmatched=True)
    truth = encode(passages[label_column].tolist(), labels, allow_unmatched=False)
    groups = passages["group_id"].astype(str).to_numpy()
    true_share = np.bincount(truth, minlength=len(labels) + 1)[: len(labels)] / len(truth)
    unique = np.sort(np.unique(groups))
    rng = np.random.default_rng(seed)
    rows = []
    for draw in range(draws):
        picked = np.isin(groups, rng.choice(unique, size=gold_groups, replace=False))
        table = label_shares(
            predicted, groups, truth[picked], predicted[picked], groups[picked],
            len(labels) + 1, n_boot, seed + draw,
        )  # fmt: skip
        table = table[table["label"] < len(labels)]
        table["truth"] = true_share[table["label"]]
        rows.append(table.assign(draw=draw))
    results = pd.concat(rows, ignore_index=True)
    results["covered"] = (results["ci_low"] <= results["truth"]) & (
        results["truth"] <= results["ci_high"]
    )
    results["width"] = results["ci_high"] - results["ci_low"]
    results["bias"] = results["estimate"] - results["truth"]
    summary = (
        results.groupby(["label", "method"], sort=False)
        .agg(
            truth=("truth", "first"),
            coverage=("covered", "mean"),
            mean_width=("width", "mean"),
            mean_bias=("bias", "mean"),
        )  # fmt: skip
        .reset_index()
    )
    summary["label"] = [labels[i] for i in summary["label"]]
    return summary


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=Path, required=True, help="passages.parquet")
    parser.add_argument("--config", type=Path, default=Path("config/config.yaml"))
    parser.add_argument("--label-column", help="true label column (default: task.label_column)")
    parser.add_argument("--gold-groups", type=int, default=24, help="groups per gold sample")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    task = load_config(args.config)["task"]
    label_column = args.label_column or task["label_column"]
    passages = read_table(args.passages)
    passages = passages[passages[label_column].isin(task["labels"])]
    started = time.perf_counter()
    summary = coverage(passages, task["labels"], label_column, args.gold_groups, args.draws,
                       args.bootstrap, args.seed)  # fmt: skip
    accuracy = (passages["predicted_label"] == passages[label_column]).mean()
    print(
        f"{len(passages)} passages in {passages['group_id'].nunique()} groups, model accuracy "
        f"{accuracy:.3f}; {args.draws} gold samples of {args.gold_groups} groups, "
        f"{args.bootstrap} bootstrap resamples each ({time.perf_counter() - started:.0f} s)"
    )
    print(summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return summary


if __name__ == "__main__":
    main()
