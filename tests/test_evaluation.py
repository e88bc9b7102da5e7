"""The evaluate job loads no model: it runs with torch and transformers unimportable."""

import subprocess
import sys

# Runs evaluate on two hand-made predictions tables in a fresh interpreter where importing torch,
# transformers, peft or bitsandbytes fails.
SCRIPT = """
import sys
for name in ("torch", "transformers", "peft", "bitsandbytes"):
    sys.modules[name] = None  # `import name` now raises ImportError
from pathlib import Path

import pandas as pd
from locallm.evaluation.evaluate import evaluate
from locallm.tables import write_table

out = Path(sys.argv[1])
for stage in ("base", "sft"):
    write_table(pd.DataFrame({
        "doc_id": ["a", "b", "c"], "group_id": ["g1", "g2", "g3"], "party": ["D", "R", "R"],
        "parsed_label": pd.array(["D", "R", "D"], dtype="string"),
        "prob_D": [0.9, 0.2, 0.6], "prob_R": [0.1, 0.8, 0.4], "variant": "v", "stage": stage,
    }), out / f"{stage}.parquet")
write_table(pd.DataFrame({"party": ["D", "R", "R"]}), out / "train.parquet")
evaluate(
    predictions=[out / "base.parquet", out / "sft.parquet"], perplexities=[],
    train=out / "train.parquet", task={"labels": ["D", "R"], "label_column": "party"},
    settings={"bootstrap": 20, "calibration_bins": 5,
              "good_enough": {"metric": "accuracy", "threshold": None}},
    seed=0, **{name: out / name for name in (
        "metrics_tsv", "confusion_tsv", "reliability_tsv", "comparison_png", "confusion_png",
        "calibration_png", "decision_md")},
)
print("loaded:", sorted(m for m in ("torch", "transformers") if sys.modules.get(m)))
"""


def test_evaluate_runs_with_torch_and_transformers_unimportable(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded: []" in result.stdout
    metrics = (tmp_path / "metrics_tsv").read_text()
    assert "accuracy" in metrics and "\tsft\t" in metrics
