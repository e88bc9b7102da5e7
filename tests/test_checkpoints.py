"""Which checkpoint a rerun resumes from: complete ones of the same run key only."""

import json

from locallm.train.checkpoints import mark_complete, newest_checkpoint


def test_a_checkpoint_half_deleted_after_its_marker_is_not_resumed(tmp_path):
    complete = tmp_path / "checkpoint-2"
    complete.mkdir()
    (complete / "trainer_state.json").write_text("{}")
    mark_complete(complete)
    rotated = tmp_path / "checkpoint-4"
    rotated.mkdir()
    (rotated / "model.safetensors").write_text("weights")
    (rotated / "trainer_state.json").write_text("{}")
    mark_complete(rotated)
    (rotated / "model.safetensors").unlink()  # killed while the trainer's rotation deleted it
    (tmp_path / "run_key.json").write_text(json.dumps({"key": "k"}))
    assert newest_checkpoint(tmp_path, "k") == str(complete)
    assert not rotated.exists()


def test_an_unreadable_run_key_discards_the_checkpoints_instead_of_failing(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "run_key.json").write_text('{"ke')  # killed while writing it
    assert newest_checkpoint(tmp_path, "k") is None
    assert json.loads((tmp_path / "run_key.json").read_text()) == {"key": "k"}


def test_checkpoints_of_other_settings_are_discarded(tmp_path):
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "run_key.json").write_text(json.dumps({"key": "old"}))
    assert newest_checkpoint(tmp_path, "new") is None
    assert not (tmp_path / "checkpoint-4").exists()
