"""The generated Colab install cell: when it installs, and what (no Colab needed)."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import sync_notebooks  # noqa: E402

CELL = sync_notebooks.setup_source(sync_notebooks.config())


class Shell:
    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line):
        self.magics.append((name, line))


def run_cell(monkeypatch, in_colab: bool, installed: bool) -> list:
    shell = Shell()
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    real = importlib.metadata.version

    def version(name):
        if name == sync_notebooks.PACKAGE and not installed:
            raise importlib.metadata.PackageNotFoundError(name)
        return "0.1.0" if name == sync_notebooks.PACKAGE else real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    code = TransformerManager().transform_cell(CELL)
    exec(compile(code, "colab-setup", "exec"), {"get_ipython": lambda: shell})
    return shell.magics


def test_outside_colab_nothing_is_installed(monkeypatch):
    assert run_cell(monkeypatch, in_colab=False, installed=False) == []


def test_in_colab_the_missing_distribution_is_installed_even_beside_a_helpers_module(
    monkeypatch, tmp_path
):
    (tmp_path / "helpers.py").write_text("# a learner's own helpers\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # `import helpers` would find this file
    magics = run_cell(monkeypatch, in_colab=True, installed=False)
    spec = sync_notebooks.install_spec(
        **{k: sync_notebooks.config()[k] for k in ("repository", "ref")}
    )
    assert magics == [("pip", f'install --quiet "{spec}"')]


def test_in_colab_an_installed_distribution_is_not_installed_again(monkeypatch):
    assert run_cell(monkeypatch, in_colab=True, installed=True) == []


def test_the_cell_makes_no_restart_promise_and_installs_no_extras():
    assert "restart" not in CELL.lower()
    assert "[" not in CELL.split("%pip", 1)[1].split("@", 1)[0]  # no [batch]/[dev] extras


@pytest.mark.parametrize(
    "tool",
    ["ipykernel", "ipython", "papermill", "nbformat", "nbval", "jupyterlab", "ruff", "pytest"],
)
def test_notebook_tooling_is_not_a_base_dependency(tool):
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        r.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower()
        for r in project["dependencies"]
    }
    assert tool not in names
