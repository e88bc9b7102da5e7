"""The pre-registered "good enough" decision on a hand-made metrics table."""

import pandas as pd
from locallm.evaluation.decision import cheapest_good_enough, decision_markdown, mark_good_enough

GOOD_ENOUGH = {"metric": "macro_f1", "threshold": 0.70}


def metrics_table(f1_ci_low: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Accuracy and macro-F1 rows per (variant, stage), a majority baseline, given CI lows."""
    rows = []
    for (variant, stage), low in f1_ci_low.items():
        rows.append((variant, stage, "accuracy", 0.9, 0.8, 0.95))
        rows.append((variant, stage, "macro_f1", low + 0.05, low, low + 0.1))
    rows.append(("baseline", "majority", "macro_f1", 0.8, 0.75, 0.85))
    return pd.DataFrame(rows, columns=["variant", "stage", "metric", "value", "ci_low", "ci_high"])


def test_good_enough_columns_mark_each_variant_stage_by_its_ci_lower_bound():
    table = metrics_table({("a", "base"): 0.50, ("a", "fewshot"): 0.70, ("a", "sft"): 0.69})
    marked = mark_good_enough(table, GOOD_ENOUGH).set_index(["variant", "stage", "metric"])
    assert marked.loc[("a", "base", "macro_f1"), "good_enough"] == False  # noqa: E712
    assert marked.loc[("a", "fewshot", "macro_f1"), "good_enough"] == True  # noqa: E712 - ci_low == 0.70
    assert marked.loc[("a", "sft", "macro_f1"), "good_enough"] == False  # noqa: E712
    assert marked.loc[("a", "sft", "macro_f1"), "threshold"] == 0.70
    # Other metrics and the baselines carry no verdict, even when their numbers would clear it.
    assert marked.loc[("a", "base", "accuracy"), ["threshold", "good_enough"]].isna().all()
    assert pd.isna(marked.loc[("baseline", "majority", "macro_f1"), "good_enough"])


def test_without_a_setting_the_table_is_unchanged_and_the_decision_says_none_was_set():
    table = metrics_table({("a", "base"): 0.9})
    unset = {"metric": "macro_f1", "threshold": None}
    assert mark_good_enough(table, unset).equals(table)
    text = decision_markdown(table, unset)
    assert "no decision is made" in text and "evaluation.good_enough" in text


def test_the_decision_names_the_cheapest_stage_that_clears_whatever_the_row_order():
    table = metrics_table(
        {
            ("b", "dpo"): 0.80,
            ("b", "sft"): 0.75,
            ("a", "sft"): 0.72,
            ("a", "fewshot"): 0.60,
            ("a", "base"): 0.40,
            ("b", "base"): 0.40,
        }
    )
    marked = mark_good_enough(table, GOOD_ENOUGH)
    best = cheapest_good_enough(marked)
    assert sorted(best["variant"]) == ["a", "b"] and set(best["stage"]) == {"sft"}
    text = decision_markdown(marked, GOOD_ENOUGH)
    assert "**The cheapest that is good enough: b at stage sft**" in text
    assert "at this stage: b (- M), a (- M)." in text  # no sizes recorded: the table's order
    assert "| a | fewshot | - | 0.650 | 0.600 to 0.700 | - | no |" in text
    assert "| b | dpo | - | 0.850 | 0.800 to 0.900 | - | yes |" in text
    assert "lower bound of the 95% CI" in text and "**0.7**" in text


def test_the_decision_says_so_when_no_stage_clears():
    marked = mark_good_enough(metrics_table({("a", "base"): 0.1, ("a", "sft"): 0.69}), GOOD_ENOUGH)
    assert cheapest_good_enough(marked).empty
    assert "**No stage is good enough**" in decision_markdown(marked, GOOD_ENOUGH)


def test_among_models_the_smaller_clears_first_and_a_cut_stage_says_so():
    table = metrics_table(
        {("gemma", "base"): 0.1, ("gemma", "fewshot"): 0.75, ("smol", "fewshot"): 0.71}
    )
    params = {"gemma": 268_098_176, "smol": 134_515_008}
    table["model_params"] = table["variant"].map(params)
    table["text_seen"] = 1.0
    table["text_cut_share"] = 0.0
    cut = (table["variant"] == "smol") & (table["stage"] == "fewshot")
    table.loc[cut, ["text_seen", "text_cut_share"]] = [0.6, 0.5]
    marked = mark_good_enough(table, GOOD_ENOUGH)
    assert cheapest_good_enough(marked)["variant"].tolist() == ["smol", "gemma"]
    text = decision_markdown(marked, GOOD_ENOUGH)
    assert "**The cheapest that is good enough: smol at stage fewshot**" in text
    assert "smol (134.5 M), gemma (268.1 M)" in text
    assert (
        "| smol | fewshot | 134.5 | 0.760 | 0.710 to 0.810 | 60%, cut in 50% of rows | yes |"
        in text
    )
    assert "| gemma | fewshot | 268.1 | 0.800 | 0.750 to 0.850 | 100% | yes |" in text
    assert "its prompts cut the passage to fit the model's context in 50% of rows" in text
