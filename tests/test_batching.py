"""Inference batches: length-sorted, within a token budget; the progress heartbeat."""

import time

import pytest
from locallm.infer.batching import Progress, length_sorted_batches, token_batches


def test_length_sorted_batches_run_longest_first_and_cover_every_index():
    batches = length_sorted_batches([3, 10, 1, 7, 7], batch_size=2)
    assert batches == [[1, 3], [4, 0], [2]]


def test_token_batches_fill_the_budget_of_padded_tokens_longest_first():
    lengths = [3, 10, 1, 7, 7, 2, 2]
    batches = token_batches(lengths, batch_tokens=20)
    # 10 + 7 would pad to 2 x 10 = 20; a third row to 30. Then 7, 7 (14) + 3 would be 21.
    assert batches == [[1, 3], [4, 0], [5, 6, 2]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


@pytest.mark.parametrize("budget", [1, 5, 16, 64, 1000])
def test_token_batches_never_exceed_the_budget_but_for_a_long_prompt_alone(budget):
    lengths = [37, 3, 12, 12, 5, 64, 1, 9, 9, 9, 30, 2]
    batches = token_batches(lengths, budget, extra_tokens=4)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        padded = len(batch) * (max(lengths[i] for i in batch) + 4)
        assert padded <= budget or len(batch) == 1
    flat = [i for b in batches for i in b]
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)


def test_token_batches_cap_rows_and_refuse_a_budget_under_one():
    assert token_batches([1] * 5, batch_tokens=None, max_rows=2) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="inference.batch_tokens must be >= 1"):
        token_batches([1], batch_tokens=0)


def test_progress_logs_rows_done_and_rate_while_a_batch_is_still_running(caplog):
    caplog.set_level("INFO")
    with Progress(total=10, what="classify", interval=0.05) as progress:
        progress.advance(4)
        time.sleep(0.3)  # one long batch: the side thread still reports
        progress.advance(6)
    reports = [r.getMessage() for r in caplog.records if "rows/s" in r.getMessage()]
    assert len(reports) >= 3
    assert reports[0].startswith("classify: 4 of 10 rows done")
    assert reports[-1].startswith("classify: 10 of 10 rows done")
