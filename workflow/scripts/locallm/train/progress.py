"""Training progress in the job's log: one line per logging step with the step, the total, the
loss and the time left, instead of the trainer's raw dictionaries."""

from __future__ import annotations

from typing import Any

from locallm.logs import get_logger

log = get_logger("training")

# The trainer's log keys worth a word in the progress line, with their short names.
SHOWN = {
    "loss": "loss",
    "rewards/accuracies": "reward accuracy",
    "rewards/margins": "reward margin",
    "learning_rate": "lr",
    "grad_norm": "grad norm",
}


def duration(seconds: float) -> str:
    """3725 -> '1h02m', 95 -> '1m35s', 7 -> '7s'."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(
    stage: str, step: int, total: int, first_step: int, elapsed: float, logs: dict[str, Any]
) -> str:
    """'sft step 12/40 (30%), loss 5.24, lr 0.0002, 2.1 s/step, about 59s left'.

    The pace counts only the steps of this run (`first_step`: where it resumed), so a resumed run
    does not claim the earlier run's steps were instant.
    """
    parts = [f"{stage} step {step}/{total} ({100 * step / max(total, 1):.0f}%)"]
    parts += [f"{name} {logs[key]:.4g}" for key, name in SHOWN.items() if key in logs]
    done = step - first_step
    if done > 0:
        pace = elapsed / done
        parts.append(f"{pace:.2f} s/step, about {duration(pace * (total - step))} left")
    return ", ".join(parts)


def progress_logger(stage: str):
    """A TrainerCallback that logs progress_line at every logging step."""
    import time

    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.first_step, self.started = state.global_step, time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and "loss" in logs:
                elapsed = time.perf_counter() - self.started
                line = progress_line(
                    stage, state.global_step, state.max_steps, self.first_step, elapsed, logs
                )
                log.info(line)

    return Progress()
