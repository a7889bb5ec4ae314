"""Checks on the committed notebooks: parameters, kernels, stored outputs, sync (lint: make lint)"""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers.notebook import parameter_defaults, parameters_cell

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SHARED = {
    "data_source",
    "lang",
    "min_samples",
    "max_samples",
    "seed",
    "work_dir",
    "backend",
    "base_model",
    "training_steps",
    "learning_rate",
    "model_id",
    "batch_size",
    "examples_per_intent",
}
KEY_LIKE = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z0-9]{32}(?![A-Za-z0-9])"
    r"|(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])"
)


def load(path):
    return nbformat.read(path, as_version=4)


def parameters(path) -> dict[str, tuple[object, str]]:
    """name -> (default value, comment) from the notebook's parameters cell."""
    return parameter_defaults(parameters_cell(load(path)).source)


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_parameters_cell_of_commented_literals(path):
    cells = [c for c in load(path).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell must be tagged 'parameters'"
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1, ast.dump(node)
        assert isinstance(node.targets[0], ast.Name)
        ast.literal_eval(node.value)  # plain literals only
    for name, (_, comment) in parameters(path).items():
        assert len(comment) > 10, f"{name}: add a comment giving its allowed values"


def test_shared_parameter_names_mean_the_same_thing():
    """Same name, same documented meaning and type; a lesson may pick its own default (06: fr)."""
    seen: dict[str, tuple[str, tuple]] = {}
    for path in NOTEBOOKS:
        for name, (value, comment) in parameters(path).items():
            if name not in SHARED:
                continue
            if name in seen:
                first, first_value = seen[name]
                assert (type(value), comment) == first_value, f"{name}: differs from {first}"
            else:
                seen[name] = (path.name, (type(value), comment))
    assert {"data_source", "lang", "seed", "work_dir"} <= set(seen)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernel_and_canonical_execution(path):
    nb = load(path)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in code]
    assert counts == list(range(1, len(code) + 1)), "run `make notebooks` (fresh kernel, in order)"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, "committed notebooks must run without errors"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_key_like_strings(path):
    for cell in load(path).cells:
        text = cell.source
        for out in cell.get("outputs", []):
            text += out.get("text", "") + out.get("evalue", "")
            text += "".join(
                json.dumps(v) for k, v in out.get("data", {}).items() if not k.startswith("image/")
            )
        for match in KEY_LIKE.findall(text):
            looks_like_key = re.search(r"[0-9]", match) and re.search(r"[A-Za-z]", match)
            assert not (looks_like_key and not re.fullmatch(r"[0-9a-f]{32}", match)), match


def test_badges_setup_cells_and_navigation_are_in_sync():
    result = subprocess.run(
        [sys.executable, "tools/sync_notebooks.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_nbval_fails_when_a_stored_output_is_altered(tmp_path):
    """Strict nbval really compares outputs: change one stored number and it must fail."""
    nb = load(ROOT / "notebooks" / "01_explore_data.ipynb")
    target = next(c for c in nb.cells if c.cell_type == "code" and "rows per split" in c.source)
    stream = next(
        o for o in target.outputs if o.output_type == "stream" and "rows per split" in o.text
    )
    stream.text = re.sub(
        r"'train': (\d+)", lambda m: f"'train': {int(m.group(1)) + 1}", stream.text
    )
    copy = tmp_path / "altered.ipynb"
    nbformat.write(nb, copy)
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "--nbval-current-env",
        "-p",
        "no:cacheprovider",
        "--nbval-sanitize-with",
        str(ROOT / "tests" / "nbval_sanitize.cfg"),
        str(copy),
        "-q",
    ]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout[-2000:]
    assert "1 failed" in result.stdout
