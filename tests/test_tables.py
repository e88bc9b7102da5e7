"""Atomic writes: a failed write leaves no file that looks finished."""

import pandas as pd
import pytest
from locallm.tables import atomic_dir, atomic_path, read_table, write_table


def test_write_table_round_trips_without_index(tmp_path):
    df = pd.DataFrame({"doc_id": ["a", "b"], "n": [1, 2]}, index=[5, 9])
    write_table(df, tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    assert back.to_dict("list") == {"doc_id": ["a", "b"], "n": [1, 2]}
    assert list(back.index) == [0, 1]


def test_failed_atomic_write_leaves_neither_output_nor_temp_file(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_old_folder_only_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
        raise RuntimeError("killed")
    assert [p.name for p in target.iterdir()] == ["old"]
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_read_table_names_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.parquet"):
        read_table(tmp_path / "nowhere.parquet")


def test_outputs_get_umask_permissions_not_mkstemp_private_ones(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "f").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "t.parquet").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


def appended(path, frames, row_group_bytes):
    from locallm.tables import parquet_appender

    with parquet_appender(path, row_group_bytes) as append:
        for frame in frames:
            append(frame)


def shard_frames() -> list[pd.DataFrame]:
    return [
        pd.DataFrame({"doc_id": [f"{s}-{i}" for i in range(n)], "n": range(n), "x": 0.5})
        for s, n in enumerate([3, 1, 4, 5])
    ]


def test_an_appended_table_under_one_row_group_is_byte_identical_to_write_table(tmp_path):
    frames = shard_frames()
    appended(tmp_path / "streamed.parquet", frames, row_group_bytes=1 << 30)
    write_table(pd.concat(frames, ignore_index=True), tmp_path / "whole.parquet")
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_an_appended_table_in_row_groups_reads_back_equal(tmp_path):
    import pyarrow.parquet as pq

    frames = shard_frames()
    # An empty frame between two others (a shard without rows of this split) is skipped.
    appended(tmp_path / "streamed.parquet", [*frames[:2], frames[0].iloc[:0], *frames[2:]], 1)
    assert pq.ParquetFile(tmp_path / "streamed.parquet").metadata.num_row_groups == 4
    pd.testing.assert_frame_equal(
        read_table(tmp_path / "streamed.parquet"), pd.concat(frames, ignore_index=True)
    )


def test_an_appended_table_of_empty_frames_keeps_the_columns(tmp_path):
    appended(tmp_path / "empty.parquet", [f.iloc[:0] for f in shard_frames()], 1 << 30)
    assert read_table(tmp_path / "empty.parquet").columns.tolist() == ["doc_id", "n", "x"]
    assert len(read_table(tmp_path / "empty.parquet")) == 0
