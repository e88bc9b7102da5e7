"""Are two runs' results byte-identical? SHA-256 of every Parquet, TSV, JSON, Markdown and
safetensors file.

    python performance/same_results.py BEFORE/results AFTER/results/test \
        [--renamed results/ results/test/]

Run `snakemake --cores 2 --configfile config/test.yaml` in a clone of each commit first; give each
run's results folder (results/ before results per config, results/NAME/ after). Files are matched
by their path under the folder. Prints one line per file that differs or exists on one side only,
then the count of identical files; exits 1 when any differs. With `--renamed OLD NEW` (the results
folder moved), a file whose bytes differ counts as the same when it is equal once every OLD in the
before file's text (Parquet: its string cells) reads NEW: a path the run records, nothing else.
Timings and logs are not results: benchmarks/ and logs/ are outside the folders compared, and the
files of VOLATILE (wall times, the git commit, PEFT's target_modules written from a set) are listed
apart, not counted as differences.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import sys
from pathlib import Path

SUFFIXES = {".parquet", ".tsv", ".json", ".md", ".safetensors"}
# Files that differ between two runs of the same code: their wall times, tokens/s and peak memory
# (run_info, bootstrap_info, trainer_state, the REFORMS compute table, the model cards), the git
# commit (environment.json, REFORMS), PEFT's target_modules (a set: its order follows the hash
# seed), and what hashes them (checksums.tsv holds REFORMS.md's, run_key.json the base's files).
VOLATILE = [
    "models/base/bootstrap_info.json",
    "models/*/*/run_info.json",
    "models/*/*/README.md",
    "models/*/*/adapter_config.json",
    "checkpoints/*",
    "report/REFORMS.md",
    "report/environment.json",
    "report/checksums.tsv",
    "report/model_cards/*/*.md",
]


def volatile(path: str) -> bool:
    """True for a path of VOLATILE (fnmatch: `*` also crosses folders)."""
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in VOLATILE)


def digests(folder: Path) -> dict[str, str]:
    """{path under `folder`: sha256} of its result files."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.suffix in SUFFIXES
    }


def equal_renamed(before: Path, after: Path, renamed: tuple[str, str]) -> bool:
    """True when `before` with every renamed[0] read as renamed[1] equals `after`."""
    old, new = renamed
    if before.suffix == ".parquet":
        import pandas as pd

        then, now = pd.read_parquet(before), pd.read_parquet(after)
        for column in then.columns:
            if pd.api.types.is_string_dtype(then[column]):
                then[column] = then[column].str.replace(old, new, regex=False)
        return then.equals(now)
    if before.suffix == ".safetensors":
        return False
    return before.read_text().replace(old, new) == after.read_text()


def compare(
    before: Path, after: Path, renamed: tuple[str, str] | None = None
) -> tuple[list[str], list[str], list[str]]:
    """(identical paths, one line per path that differs or is on one side only, volatile paths
    that differ)."""
    old, new = digests(before), digests(after)
    same, differ, changing = [], [], []
    for path in sorted(old.keys() | new.keys()):
        if path in old and path in new and old[path] != new[path] and volatile(path):
            changing.append(path)
        elif (
            renamed
            and path in old
            and path in new
            and old[path] != new[path]
            and equal_renamed(before / path, after / path, renamed)
        ):
            same.append(path)
        elif path not in new:
            differ.append(f"only before: {path}")
        elif path not in old:
            differ.append(f"only after:  {path}")
        elif old[path] != new[path]:
            differ.append(f"differs:     {path}")
        else:
            same.append(path)
    return same, differ, changing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--renamed", nargs=2, metavar=("OLD", "NEW"), help="a moved path prefix")
    args = parser.parse_args(argv)
    renamed = tuple(args.renamed) if args.renamed else None
    same, differ, changing = compare(args.before, args.after, renamed)
    print("\n".join(differ))
    print(f"{len(same)} identical, {len(differ)} not ({', '.join(sorted(SUFFIXES))} files)")
    print(f"{len(changing)} volatile files differ (timings, commit, PEFT's set order):")
    print("\n".join(f"    {path}" for path in changing))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
