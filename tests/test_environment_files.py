"""envs/locallm.yaml (for `--sdm conda`) pins exactly what requirements.txt pins."""

import re
import tomllib

import yaml
from conftest import ROOT
from setuptools import find_namespace_packages


def requirement_lines(text: str) -> list[str]:
    """Requirement lines without comments, blank lines and the project itself (`-e .`)."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and line != "-e ."]


def test_requirements_txt_installs_the_locallm_package_from_this_checkout():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert lines[-1] == "-e ."  # after the pins it depends on
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["name"] == "locallm"
    # A non-editable install (a cluster's shared env) must carry every stage subpackage too.
    find = project["tool"]["setuptools"]["packages"]["find"]
    found = set(
        find_namespace_packages(where=str(ROOT / find["where"][0]), include=find["include"])
    )
    library = ROOT / "workflow" / "scripts" / "locallm"
    on_disk = {
        ".".join(("locallm", *init.parent.relative_to(library).parts))
        for init in library.rglob("__init__.py")
    }
    assert on_disk <= found and "locallm.evaluation" in on_disk


def test_conda_env_lists_the_same_pins_as_requirements_txt():
    env = yaml.safe_load((ROOT / "envs" / "locallm.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    requirements = requirement_lines((ROOT / "requirements.txt").read_text())
    # Listed, not included: `-r` paths do not resolve from Snakemake's copy of the env file.
    assert not any(entry.startswith("-") for entry in pip)
    assert sorted(pip) == sorted(requirements)
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+]+", entry) for entry in pip)


def test_conda_env_python_matches_the_projects_python():
    env = yaml.safe_load((ROOT / "envs" / "locallm.yaml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert 'target-version = "py311"' in (ROOT / "pyproject.toml").read_text()
