"""The library's import graph follows the pipeline: stage packages import only their own or an
earlier stage (or the top-level helpers), there is no cycle, and no chain of imports between
library modules is longer than MAX_CHAIN modules (docs/architecture.md)."""

import ast
import functools
from pathlib import Path

import pytest
from conftest import ROOT

LIBRARY = ROOT / "workflow" / "scripts" / "locallm"
# The pipeline's order of stage packages; a stage added later (annotate, export) goes where its
# jobs run in the DAG. Top-level modules (config, plan, tables, ...) are not stages.
STAGE_ORDER = [
    "data",
    "filtering",
    "task",
    "model",
    "train",
    "infer",
    "evaluation",
    "annotate",
    "export",
    "report",
]
MAX_CHAIN = 6


def module_name(path: Path) -> str:
    parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(LIBRARY.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The library modules `path` imports, type-only imports included (a cycle through them
    still ties two modules together)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            # `from locallm.data import ingest` imports the module locallm.data.ingest.
            candidates = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in known and c != name}
    return found


@functools.cache
def import_graph() -> dict[str, frozenset[str]]:
    modules = library_modules()
    known = set(modules)
    return {name: frozenset(imported_modules(name, path, known)) for name, path in modules.items()}


def stage_of(module: str) -> str | None:
    """The stage package of `locallm.<stage>.<module>`; None for top-level modules."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or module in {f"locallm.{s}" for s in STAGE_ORDER} else None


def longest_chain(graph: dict[str, frozenset[str]]) -> list[str]:
    """The longest path of imports (the graph has no cycle: test_no_import_cycle)."""

    @functools.cache
    def chain_from(module: str) -> tuple[str, ...]:
        tails = [chain_from(dep) for dep in graph[module]]
        return (module, *max(tails, key=len, default=()))

    return list(max((chain_from(m) for m in graph), key=len))


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str] | None:
    """One cycle of imports as a list of modules (first == last), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_the_import_graph_reads_every_library_module():
    graph = import_graph()
    assert "locallm.plan" in graph and "locallm.data.ingest" in graph
    # The parser sees imports: plan imports the data sources and the settings.
    assert {"locallm.data.sources", "locallm.settings"} <= graph["locallm.plan"]


def test_every_stage_package_is_in_the_pipeline_order():
    packages = {p.name for p in LIBRARY.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(STAGE_ORDER), f"add {packages - set(STAGE_ORDER)} to STAGE_ORDER"


def test_no_stage_imports_a_later_stage():
    graph = import_graph()
    upward = []
    for module, deps in graph.items():
        stage = stage_of(module)
        for dep in deps:
            dep_stage = stage_of(dep)
            if stage is None and dep_stage is not None:
                continue  # top level: plan and config_checks reach into the stages (see below)
            if dep_stage and STAGE_ORDER.index(dep_stage) > STAGE_ORDER.index(stage):
                upward.append(f"{module} -> {dep}")
    assert upward == []


def test_top_level_helpers_import_no_stage_except_the_planning_modules():
    """tables, logs, hashing, config, settings, scheduling are used by every stage: they must not
    import one (a stage importing them would otherwise import a later stage through them)."""
    graph = import_graph()
    planning = {"locallm.plan", "locallm.config_checks", "locallm.installed", "locallm"}
    reaching = sorted(
        f"{module} -> {dep}"
        for module, deps in graph.items()
        if stage_of(module) is None and module not in planning
        for dep in deps
        if stage_of(dep) is not None
    )
    assert reaching == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_longest_import_chain_is_at_most_six_modules():
    chain = longest_chain(import_graph())
    assert len(chain) <= MAX_CHAIN, " -> ".join(chain)


@pytest.mark.parametrize(
    "graph, cycle",
    [
        ({"a": frozenset({"b"}), "b": frozenset({"a"})}, ["a", "b", "a"]),
        ({"a": frozenset({"b"}), "b": frozenset()}, None),
    ],
)
def test_find_cycle_finds_a_cycle_and_only_a_cycle(graph, cycle):
    assert find_cycle(graph) == cycle


def test_longest_chain_counts_modules_along_the_deepest_path():
    graph = {"a": frozenset({"b", "c"}), "b": frozenset({"c"}), "c": frozenset()}
    assert longest_chain(graph) == ["a", "b", "c"]


def test_every_output_path_is_written_once_in_the_path_table():
    """Rules and Plan name outputs, logs and benchmarks through locallm.paths, never literally."""
    sources = [*(ROOT / "workflow" / "rules").glob("*.smk"), LIBRARY / "plan.py"]
    literal = [
        f"{path.name}: {line.strip()}"
        for path in sorted(sources)
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("#")
        and any(f'"{folder}/' in line for folder in ("results", "logs", "benchmarks"))
    ]
    assert literal == []


def test_the_architecture_doc_names_every_library_module_in_its_folders_row():
    """docs/architecture.md's folder table is the table of concerns: every module is in it."""
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in (ROOT / "docs" / "architecture.md").read_text().splitlines()
        if line.startswith("| `")
    }
    missing = []
    for name, path in library_modules().items():
        if path.name == "__init__.py":
            continue
        folder = "locallm/" if stage_of(name) is None else f"{stage_of(name)}/"
        if f"`{path.name}`" not in rows.get(folder, ""):
            missing.append(f"{folder} {path.name}")
    assert missing == []
