"""Notebook plumbing: parameter checking, the working folder, Colab detection, results.

Every lesson ends with ``record(results, work / "<file>.json")``: the results are written as
JSON and shown as the cell's output named ``results``, which :func:`read_results` (the batch
runner, the tests) reads back from an executed notebook."""

from __future__ import annotations

import ast
import difflib
import io
import json
import os
import sys
import tokenize
from collections.abc import Mapping, Sequence
from pathlib import Path

import helpers
from helpers.fileio import atomic_write

PAPERMILL_MARKER = "# Parameters"  # first line of the cell papermill injects
PARAMETERS_TAG = "parameters"  # the cell papermill reads the defaults from
RESULTS_NAME = "results"  # name of the output record() shows


class ParameterError(ValueError):
    """A notebook parameter is unknown or has a value outside its allowed set."""


def in_colab() -> bool:
    return "google.colab" in sys.modules


def _assignments(source: str) -> list[tuple[str, ast.expr | None, int]]:
    """(name, value node, line) for each top-level ``name = value`` / ``name: T = value``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # IPython magics etc.: not a parameters cell
        return []
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            found += [
                (t.id, node.value, node.lineno) for t in node.targets if isinstance(t, ast.Name)
            ]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.append((node.target.id, node.value, node.lineno))
    return found


def parameter_names(source: str) -> list[str]:
    """Names assigned at the top level of ``source``, in order, each once (``a = 1``,
    ``b: int = 2``). Parsed with ``ast``: ``papermill.inspect_notebook`` skips lines with two
    ``=`` (e.g. one in the comment). A cell that is not plain Python (IPython magics) has none.
    """
    return list(dict.fromkeys(name for name, _, _ in _assignments(source)))


def parameter_defaults(source: str) -> dict[str, tuple[object, str]]:
    """name -> (default value, the comment on its line) for a ``parameters`` cell of literals.
    Raises ``ValueError`` naming the line when a default is not a plain literal."""
    comments = {
        tok.start[0]: tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    out = {}
    for name, value, line in _assignments(source):
        try:
            out[name] = (ast.literal_eval(value), comments.get(line, ""))
        except ValueError:
            raise ValueError(
                f"parameters cell, line {line}: {name} is not a plain literal"
            ) from None
    return out


def parameters_cell(nb):
    """The notebook's cell tagged ``parameters`` (None when it has none)."""
    return next((c for c in nb.cells if PARAMETERS_TAG in c.metadata.get("tags", [])), None)


def notebook_parameters(path: str | os.PathLike) -> list[str]:
    """Names declared in the ``parameters`` cell of the notebook at ``path``."""
    import nbformat

    cell = parameters_cell(nbformat.read(path, as_version=4))
    return parameter_names(cell.source) if cell is not None else []


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
            injected += parameter_names(source)
        else:
            declared += [n for n in parameter_names(source) if n not in declared]
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


def rounded(value, digits: int = 4):
    """``value`` with every float rounded to ``digits`` significant digits (in dicts, lists and
    tuples too; numpy numbers become plain ones), for :func:`record`."""
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and value == value and abs(value) != float("inf"):
        return float(format(value, f".{digits}g"))
    return value


def results_text(results: Mapping) -> str:
    """The JSON text :func:`record` writes and shows: sorted keys, 2-space indent."""
    return json.dumps(results, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=True)


def record(results: Mapping, path: str | os.PathLike | None = None) -> None:
    """End a lesson: write ``results`` as JSON to ``path`` (atomically, if given) and show them
    as the cell's output named ``results``.

    Round floats before calling: the text is what nbval compares with the committed output,
    so it should only hold digits the lesson means. Values must be JSON types (dict, list,
    str, int, float, bool, None).
    """
    text = results_text(results)
    if path is not None:
        atomic_write(path, text + "\n")
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python
        get_ipython = None  # noqa: N806
    if get_ipython is None or get_ipython() is None:
        print(text)
        return
    display({"text/plain": text}, raw=True, metadata={"name": RESULTS_NAME})


def read_results(nb, name: str = RESULTS_NAME) -> dict | None:
    """The results a notebook showed with :func:`record` (the last output named ``name``),
    or None. ``nb`` is an executed notebook or its path."""
    if isinstance(nb, (str, os.PathLike)):
        import nbformat

        nb = nbformat.read(nb, as_version=4)
    found = None
    for cell in nb.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("metadata", {}).get("name") == name:
                found = output
    return None if found is None else json.loads(found["data"]["text/plain"])
