"""Training progress lines: step, total, loss and time left, not the trainer's raw dicts."""

from locallm.train.progress import duration, progress_line


def test_progress_line_says_step_total_loss_pace_and_time_left():
    line = progress_line("sft", 12, 40, 0, 24.0, {"loss": 5.2419, "learning_rate": 2e-4})
    assert line == "sft step 12/40 (30%), loss 5.242, lr 0.0002, 2.00 s/step, about 56s left"


def test_a_resumed_run_paces_only_its_own_steps():
    # Resumed at step 30: 10 steps took 50 s, so 10 more take about 50 s (not 40 steps' worth).
    line = progress_line("dpo", 40 - 10, 40, 20, 50.0, {"loss": 0.69, "rewards/accuracies": 0.75})
    assert line == (
        "dpo step 30/40 (75%), loss 0.69, reward accuracy 0.75, 5.00 s/step, about 50s left"
    )


def test_durations_read_as_hours_minutes_seconds():
    assert [duration(s) for s in (7, 95, 3725)] == ["7s", "1m35s", "1h02m"]


def test_a_short_run_logs_often_enough_to_plot_ten_points():
    from locallm.train.training import logging_interval

    assert logging_interval(5, 8) == 1  # 8 DPO steps: 8 rows, not one at step 5
    assert logging_interval(5, 20) == 2
    assert logging_interval(5, 100) == 5


def test_the_run_record_names_the_cpu_model_not_an_empty_processor():
    from locallm.machine import cpu_model
    from locallm.train.records import environment

    env = environment()
    assert env["device"] == f"cpu ({cpu_model()})" and env["device"] != "cpu ()"
    assert cpu_model()
