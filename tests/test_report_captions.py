"""Every `snakemake --report` caption renders as reStructuredText without a warning, for the
wildcards its rule's output really has (a caption naming another wildcard renders as empty)."""

import re
import types
from pathlib import Path

import docutils.core
import jinja2
import pytest
from locallm.config import load_config

ROOT = Path(__file__).resolve().parents[1]
# report("path/{wildcard}...", caption="../report/name.rst", ...): the output and its caption.
REPORTED = re.compile(r'report\(\s*"([^"]+)",\s*caption="\.\./report/([\w.]+\.rst)"', re.S)


def captions() -> list[tuple[str, str]]:
    """(caption file, output pattern) of every report() output in the rules, plus workflow.rst."""
    found = [("workflow.rst", "")]
    for rules in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        found += [(name, path) for path, name in REPORTED.findall(rules.read_text())]
    return found


@pytest.mark.parametrize(("caption", "output"), captions())
def test_caption_renders_without_docutils_warnings(caption, output):
    wildcards = {name: f"<{name}>" for name in re.findall(r"\{(\w+)", output)}
    snakemake = types.SimpleNamespace(
        config=load_config(ROOT / "config" / "config.yaml"),
        wildcards=types.SimpleNamespace(**wildcards),
    )
    source = (ROOT / "workflow" / "report" / caption).read_text()
    text = jinja2.Template(source, undefined=jinja2.StrictUndefined).render(snakemake=snakemake)
    # halt_level 2: a warning (e.g. an inline literal left open by an empty value) is an error.
    docutils.core.publish_string(
        text, writer_name="null", settings_overrides={"halt_level": 2, "report_level": 5}
    )
