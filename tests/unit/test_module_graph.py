"""The package's import graph: no circle, and the job-state rules importing nothing.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside functions: a circle
that only type checking or a lazy import hides still ties the modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "helpers"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The project modules that ``path`` imports (``from . import x`` resolves to ``pkg.x``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    out = set()
    for target in found:
        while target and target not in modules:  # a.b.name -> the module a.b
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)
    return out


def graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    edges = {module_name(p): imports(p, modules) for p in paths}
    # importing a submodule runs its package's __init__ first; that edge is not a circle
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in edges.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_helpers_package_has_no_import_circle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_relative_imports_resolve_to_modules(tmp_path):
    edges = graph()
    assert "helpers.factory.job_states" in edges["helpers.factory.store"]
    assert "helpers.factory.planning" in edges["helpers.factory.worker"]
    assert "helpers.factory.integrations" in edges["helpers.factory.worker"]


@pytest.mark.parametrize("module", ["helpers.factory.job_states", "helpers.factory.planning"])
def test_rule_modules_import_nothing_from_the_project(module):
    assert graph()[module] == set()


def status_lists(path: Path) -> list[int]:
    """Line numbers of literal lists, tuples, sets or Literal[...] naming 5+ job statuses."""
    statuses = {"QUEUED", "VALIDATING", "VALIDATED", "RUNNING", "SUCCESS", "FAILED"}
    statuses |= {"FAILED_VALIDATION", "CANCELLED", "CANCELLATION_REQUESTED", "STARTED"}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        elts = getattr(node, "elts", None)
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Tuple):
            elts = node.slice.elts
        if elts is None:
            continue
        names = {e.value for e in elts if isinstance(e, ast.Constant)}
        if len(names & statuses) >= 5:
            found.append(node.lineno)
    return found


def test_statuses_are_listed_once():
    """Only job_states spells out the job statuses; everything else imports them."""
    holders = {
        module_name(p): lines for p in sorted(PACKAGE.rglob("*.py")) if (lines := status_lists(p))
    }
    assert list(holders) == ["helpers.factory.job_states"], holders


def test_the_worker_names_no_trainer():
    text = (PACKAGE / "factory" / "worker.py").read_text(encoding="utf-8")
    for name in ("tfidf", "encoder", "minilm", "wandb"):
        assert name not in text.lower(), name
