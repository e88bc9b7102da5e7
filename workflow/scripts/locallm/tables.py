"""Read and write the workflow's tables (Parquet, TSV, JSON) and other outputs atomically."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    A killed job leaves a `.tmp-*` file behind, never a half-written output that looks done.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files; give the output the permissions a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like `atomic_path` for a folder: build it under a temporary name, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp_path, path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def read_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet table; a missing file is named in the error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table not found: {path}")
    return pd.read_parquet(path, columns=columns)


def read_tables(paths: list[str] | list[Path], columns: list[str] | None = None) -> pd.DataFrame:
    """Read and concatenate Parquet tables (e.g. all shards of a stage), in the given order."""
    frames = [read_table(p, columns=columns) for p in paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as Parquet, atomically, without the pandas index."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


# Rows a streamed table holds before it writes them out as one row group: bounds memory by this,
# not by the table, and a table smaller than it is written exactly as write_table writes it.
ROW_GROUP_BYTES = 64 * 2**20


@contextlib.contextmanager
def parquet_appender(
    path: str | os.PathLike, row_group_bytes: int = ROW_GROUP_BYTES
) -> Iterator[Callable[[pd.DataFrame], None]]:
    """Yield `append(frame)`; the frames, in order, become one Parquet table at `path`, atomically.

    Frames are gathered until they hold `row_group_bytes`, then written as a row group; every row
    group takes the column types of the first (a frame that cannot be cast is an error).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    pending: list[pd.DataFrame] = []
    held = 0
    with atomic_path(path) as tmp, contextlib.ExitStack() as stack:
        writer = None

        def flush() -> None:
            nonlocal writer, held
            # One chunk per column, as a filtered frame gives: the pages, and so the bytes, are
            # then those of write_table.
            frame = pd.concat(pending, ignore_index=True)
            table = pa.Table.from_pandas(frame, preserve_index=False).combine_chunks()
            if writer is None:
                writer = stack.enter_context(
                    pq.ParquetWriter(tmp, table.schema, compression="snappy")
                )
            writer.write_table(table.cast(writer.schema))
            pending.clear()
            held = 0

        def append(frame: pd.DataFrame) -> None:
            nonlocal held
            if len(frame) == 0:
                # An empty frame only gives the columns of a table that stays empty.
                if writer is None and not pending:
                    pending.append(frame)
                return
            pending[:] = [part for part in pending if len(part)] + [frame]
            held += int(frame.memory_usage(deep=True).sum())
            if held >= row_group_bytes:
                flush()

        yield append
        if pending or writer is None:
            if not pending:
                raise ValueError(f"no rows and no columns for {path}: append at least one frame")
            flush()


def write_tsv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as a tab-separated table (for people and R), atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=False)


def write_json(data: dict, path: str | os.PathLike) -> None:
    """Write a dict as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=120, bbox_inches="tight")
    plt.close(fig)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency); numbers as written in the source file."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = [
        "| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "/") for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])
