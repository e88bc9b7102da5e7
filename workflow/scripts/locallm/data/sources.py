"""The corpus before any record is read: which raw files it is (checked readable), how they are
sharded, the columns ingest reserves, and whether the corpus settings can work. Planning needs
this; the ingest job (data.ingest) reads the files.
"""

from __future__ import annotations

import codecs
import glob
import os
import zlib
from pathlib import Path

from locallm.data.readers import check_readable

RESERVED = ("doc_id", "group_id", "text", "source", "source_record", "chunk")
REJECT_COLUMNS = ["source", "source_record", "doc_id", "reason", "detail"]
REASONS = (
    "undecodable",
    "malformed_row",
    "missing_column",
    "empty_text",
    "empty_id",
    "empty_group",
    "duplicate_id",
    "underivable",
)


# --- sharding ---------------------------------------------------------------------------------


def file_shard(path: str | os.PathLike, shards: int) -> int:
    """The shard of a file: a hash of its path, the same in every process and on every run."""
    return zlib.crc32(Path(path).as_posix().encode("utf-8")) % shards


def shards_by_file(n_files: int, shards: int) -> bool:
    """True when files are assigned to shards whole; False when records are strided over shards."""
    return n_files >= shards


def files_by_shard(files: list[str], shards: int) -> dict[int, list[str]]:
    """Every shard's files in one pass: those that hash to it, or all of them when records are
    strided (the DAG asks for each of its ingest jobs, so hashing per job would be quadratic).
    """
    if not shards_by_file(len(files), shards):
        return {shard: list(files) for shard in range(shards)}
    by_shard: dict[int, list[str]] = {shard: [] for shard in range(shards)}
    for f in files:
        by_shard[file_shard(f, shards)].append(f)
    return by_shard


def shard_files(files: list[str], shard: int, shards: int) -> list[str]:
    """The files one shard reads: those that hash to it, or all of them when records are strided."""
    return files_by_shard(files, shards)[shard]


# --- files ------------------------------------------------------------------------------------


def corpus_paths(patterns: list[str]) -> list[str]:
    """The files matched by corpus.paths (sorted, so stable), each checked to be readable.

    A pattern that matches nothing is an error: a typo in one of several globs would otherwise
    lose a whole source without a word.
    """
    if not patterns:
        raise ValueError("config corpus.paths is empty; list the glob patterns of your files")
    matched = {pattern: glob.glob(pattern) for pattern in patterns}
    empty = [pattern for pattern, files in matched.items() if not files]
    if empty:
        raise ValueError(
            f"config corpus.paths: {', '.join(map(repr, empty))} matches no file "
            f"(relative to {os.getcwd()}); fix the pattern or remove it"
        )
    files = sorted({f for found in matched.values() for f in found})
    for path in files:
        check_readable(path)
    return files


# --- settings ---------------------------------------------------------------------------------


def metadata_names(settings: dict) -> list[str]:
    """The metadata columns of the corpus table: the configured ones, then the derived ones."""
    return list(settings["metadata_columns"]) + list(settings["derived_columns"])


def settings_problems(settings: dict) -> list[str]:
    """Corpus settings that cannot work, one line each naming the key and the fix."""
    problems = []
    try:
        codecs.lookup(settings["encoding"])
    except LookupError:
        problems.append(
            f"config corpus.encoding: {settings['encoding']!r} is not an encoding Python knows "
            "(e.g. utf-8, latin-1, cp1252)"
        )
    clash = sorted(set(metadata_names(settings)) & set(RESERVED))
    if clash:
        problems.append(
            f"config corpus.metadata_columns / derived_columns: {clash} clash with the columns "
            f"ingest writes ({', '.join(RESERVED)}); rename them in the data or leave them out"
        )
    both = sorted(set(settings["metadata_columns"]) & set(settings["derived_columns"]))
    if both:
        problems.append(
            f"config corpus.derived_columns: {both} also in corpus.metadata_columns; "
            "give the derived column a new name"
        )
    for name, spec in settings["derived_columns"].items():
        key = f"config corpus.derived_columns.{name}"
        if ("bins" in spec) == ("map" in spec):
            problems.append(f"{key}: give either `bins` (with `labels`) or `map`, not both/neither")
        elif "bins" in spec:
            bins, labels = spec["bins"], spec.get("labels")
            if any(b >= a for a, b in zip(bins[1:], bins, strict=False)):
                problems.append(f"{key}.bins {bins}: edges must increase strictly")
            if labels is None or len(labels) != len(bins) - 1:
                problems.append(
                    f"{key}.labels: {len(bins) - 1} labels needed for {len(bins)} bin edges "
                    f"(one per interval), got {labels}"
                )
        elif "labels" in spec:
            problems.append(f"{key}.labels: only used with `bins`; remove it")
        if spec["from"] in settings["derived_columns"]:
            problems.append(f"{key}.from: {spec['from']!r} is itself derived; use its source")
    return problems


def check_settings(settings: dict) -> None:
    """Fail on corpus settings that cannot work (column clashes, derived column specs)."""
    problems = settings_problems(settings)
    if problems:
        raise ValueError("\n".join(problems))
