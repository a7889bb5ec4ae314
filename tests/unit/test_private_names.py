"""Nothing imports a private name (``_name``) of a ``helpers`` module from outside that module's
own package: the lessons, benchmarks, tools and other packages use the public API. Tests may
reach into a module's internals to test them, except the encoder package's (its public API is
the model format, the scoring rule, the recipes, the trainer and the predictor)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("helpers", "benchmarks", "tools", "tests")
STRICT_FOR_TESTS = ROOT / "helpers" / "factory" / "trainers" / "encoder"


def _module_path(name: str) -> Path | None:
    """The file or package folder of the ``helpers`` module ``name`` (None if not ours)."""
    if not (name == "helpers" or name.startswith("helpers.")):
        return None
    path = ROOT.joinpath(*name.split("."))
    return path if path.is_dir() else path.with_suffix(".py")


def _absolute(node: ast.ImportFrom, file: Path) -> str:
    if not node.level:
        return node.module or ""
    parts = list(file.relative_to(ROOT).with_suffix("").parts)
    base = parts[: len(parts) - node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _owner(module: Path) -> Path:
    """The package a module belongs to: its folder (a package's own folder for a package)."""
    return module if module.is_dir() else module.parent


def violations(tree: ast.AST, file: Path, label: str) -> list[str]:
    found = []
    aliases: dict[str, Path] = {}  # local name -> helpers module it is bound to
    is_test = file.resolve().is_relative_to(ROOT / "tests")

    def inside(module: Path) -> bool:
        if is_test and not module.is_relative_to(STRICT_FOR_TESTS):
            return True
        return file.resolve().is_relative_to(_owner(module))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                path = _module_path(a.name)
                if path is not None:
                    aliases[a.asname or a.name.split(".")[0]] = path
        elif isinstance(node, ast.ImportFrom):
            name = _absolute(node, file)
            path = _module_path(name)
            if path is None:
                continue
            for a in node.names:
                sub = _module_path(f"{name}.{a.name}")
                if sub is not None and sub.exists():
                    aliases[a.asname or a.name] = sub
                if a.name.startswith("_") and not a.name.startswith("__") and not inside(path):
                    found.append(f"{label}:{node.lineno}: from {name} import {a.name}")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not inside(aliases[node.value.id])
        ):
            found.append(f"{label}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_private_name_is_used_from_outside_its_package():
    found = []
    for folder in SOURCES:
        for file in sorted((ROOT / folder).rglob("*.py")):
            found += violations(ast.parse(file.read_text()), file, str(file.relative_to(ROOT)))
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] != "code":
                continue
            code = "\n".join(  # IPython magics become a no-op statement
                line[: len(line) - len(line.lstrip())] + "pass"
                if line.lstrip().startswith(("%", "!"))
                else line
                for line in "".join(cell["source"]).splitlines()
            )
            found += violations(
                ast.parse(code), ROOT / "notebooks" / nb.name, f"{nb.name} cell {i}"
            )
    assert not found, "private names used outside their package:\n" + "\n".join(found)


def test_the_check_catches_both_forms(tmp_path):
    code = (
        "from helpers.factory.trainers.encoder.network import pad, _hidden\n"
        "from helpers.factory.trainers import encoder as enc\n"
        "enc._secret\n"
    )
    found = violations(ast.parse(code), ROOT / "benchmarks" / "x.py", "x")
    assert found == [
        "x:1: from helpers.factory.trainers.encoder.network import _hidden",
        "x:3: enc._secret",
    ]
    inside = ROOT / "helpers" / "factory" / "trainers" / "encoder" / "trainer.py"
    assert violations(ast.parse(code), inside, "x") == []
    # a test may test another module's internals, not the encoder package's
    test = ROOT / "tests" / "unit" / "test_x.py"
    assert violations(ast.parse(code), test, "x") == found
    other = "from helpers.batch import _marker_problem\n"
    assert violations(ast.parse(other), test, "x") == []
