"""Notebook plumbing: parameter checking, the working folder, Colab detection."""

from __future__ import annotations

import ast
import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import helpers

PAPERMILL_MARKER = "# Parameters"  # first line of the cell papermill injects


class ParameterError(ValueError):
    """A notebook parameter is unknown or has a value outside its allowed set."""


def in_colab() -> bool:
    return "google.colab" in sys.modules


def _assigned_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics etc.: not a parameters cell
        return []
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def check_parameters(
    namespace: Mapping,
    choices: Mapping[str, Sequence] | None = None,
) -> dict:
    """Stop on unknown parameters; return the notebook's parameters as a dict.

    Papermill only *warns* about a parameter the notebook does not declare, and then injects
    it anyway, so a typo such as ``min_sample=50`` silently does nothing. Call this in the
    cell right after the ``parameters`` cell with ``globals()``: it compares the names in
    papermill's injected cell with those assigned in the cells run before it, and raises
    :class:`ParameterError` naming any unknown one. ``choices`` maps a parameter to its
    allowed values.
    """
    history = list(namespace.get("In") or [])[:-1]  # the last entry is the running cell
    declared: list[str] = []
    injected: list[str] = []
    for source in history:
        if not isinstance(source, str):
            continue
        if source.lstrip().startswith(PAPERMILL_MARKER):
            injected += _assigned_names(source)
        else:
            declared += [n for n in _assigned_names(source) if n not in declared]
    unknown = [name for name in injected if name not in declared]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, declared, n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(
            f"unknown notebook parameter(s): {', '.join(hints)}. "
            f"This notebook's parameters are: {', '.join(declared)}"
        )
    for name, allowed in (choices or {}).items():
        value = namespace.get(name)
        if value not in allowed:
            raise ParameterError(
                f"parameter {name}={value!r} is not allowed; use one of "
                + ", ".join(repr(a) for a in allowed)
            )
    return {name: namespace[name] for name in declared if name in namespace}


def project_root() -> Path | None:
    """The source checkout when ``helpers`` is installed editable from one, else None."""
    root = Path(helpers.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").exists() and (root / "notebooks").is_dir() else None


def resolve_work_dir(work_dir: str | os.PathLike) -> Path:
    """An absolute working folder, created if needed.

    A relative ``work_dir`` is taken from the project root when running inside the checkout
    (so Jupyter, papermill and nbval all use the same ``artifacts/`` whatever their current
    folder is), and from the current folder otherwise (e.g. in Colab).
    """
    path = Path(work_dir).expanduser()
    if not path.is_absolute():
        path = (project_root() or Path.cwd()) / path
    path.mkdir(parents=True, exist_ok=True)
    return path
