"""Colab, simulated: every lesson runs alone from the wheel, in Colab's Python (3.13) and packages.

For the whole module: build the wheel; create a fresh virtual environment outside the repository
on top of a cached layer holding Colab's preinstalled packages at Colab's versions
(``tests/colab_runtime.py``); run the install cell's pip command in it; check that Colab's
torch, numpy, pandas, ipykernel and ipython are untouched. Then, for each lesson separately:
copy that one notebook into its own empty folder and execute it with papermill, offline, in a
kernel of that environment (Colab's own ipykernel 6.17.1 and ipython 7.34.0), with an empty
Hugging Face cache — as a learner gets it from the lesson's Colab badge.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import colab_runtime as colab
import nbformat
import pytest
from notebook_runner import outputs_text

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
SMALL = {"training_steps": 10}  # standalone-ness is the point here, not accuracy
TIMINGS: dict[str, float] = {}

pytestmark = [pytest.mark.slow, pytest.mark.network]


def install_cell_args(wheel: Path) -> list[str]:
    """The install cell's ``%pip`` arguments, with the built wheel in place of the git URL."""
    sys.path.insert(0, str(ROOT / "tools"))
    import sync_notebooks

    cell = sync_notebooks.setup_source(sync_notebooks.config())
    line = next(x.strip() for x in cell.splitlines() if x.strip().startswith("%pip "))
    args = shlex.split(line.removeprefix("%pip "))
    spec = sync_notebooks.install_spec(
        **{k: sync_notebooks.config()[k] for k in ("repository", "ref")}
    )
    assert spec in args, line
    return [str(wheel) if a == spec else a for a in args]


@pytest.fixture(scope="module")
def runtime(module_tmp):
    layer = colab.layer()
    tmp = module_tmp("colab")
    wheels = tmp / "wheels"
    colab.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            wheels,
            ROOT,
        ]
    )
    wheel = next(wheels.glob("intent_classifier_helpers-*.whl"))
    venv = colab.fresh_venv(tmp / "venv", layer)
    python = venv / "bin" / "python"
    before = colab.installed_versions(venv, colab.PROTECTED)
    args = install_cell_args(wheel)
    report = tmp / "report.json"
    colab.run([python, "-m", "pip", *args, "--dry-run", "--report", report])
    colab.run([python, "-m", "pip", *args])  # what the install cell does
    kernels = tmp / "jupyter" / "kernels" / "colab313"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Colab (Python 3.13)",
                "language": "python",
            }
        )
    )
    return {
        "venv": venv,
        "tmp": tmp,
        "before": before,
        "report": json.loads(report.read_text()),
        "jupyter": tmp / "jupyter",
    }


def installs(report: dict) -> dict[str, str]:
    return {
        colab.normalize(i["metadata"]["name"]): i["metadata"]["version"] for i in report["install"]
    }


def test_install_cell_leaves_colabs_packages_alone(runtime):
    pins = colab.colab_pins()
    colab_versions = {n: colab.public_version(pins[n]) for n in colab.PROTECTED}
    assert runtime["before"] == colab_versions
    touched = {n: v for n, v in installs(runtime["report"]).items() if n in colab.PROTECTED}
    assert not touched, f"the install cell would reinstall Colab's {touched}"
    after = colab.installed_versions(runtime["venv"], colab.PROTECTED)
    assert after == colab_versions
    assert colab.installed_versions(runtime["venv"], ["intent-classifier-helpers"]) == {
        "intent-classifier-helpers": "0.1.0"
    }


def test_helpers_come_from_the_fresh_environment_on_python_313(runtime):
    out = colab.run(
        [
            runtime["venv"] / "bin" / "python",
            "-c",
            "import sys, helpers; print(sys.version_info[:2], helpers.__file__)",
        ],
        cwd=runtime["tmp"],
    ).stdout
    assert out.startswith("(3, 13)") and str(runtime["venv"]) in out


def declared(notebook: Path) -> set[str]:
    nb = nbformat.read(notebook, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return {
        t.id
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
    }


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.name[:2])
def test_lesson_runs_alone_from_its_badge(runtime, notebook, tmp_path):
    folder = tmp_path / "content"  # Colab's working folder, with this lesson only
    folder.mkdir()
    shutil.copy(notebook, folder / notebook.name)
    env = {k: v for k, v in colab.clean_env().items() if not k.startswith(("JUPYTER", "HF_"))}
    env |= {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "JUPYTER_PATH": str(runtime["jupyter"]),
    }
    parameters = [
        x
        for name, value in SMALL.items()
        if name in declared(notebook)
        for x in ("-p", name, str(value))
    ]
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            "--no-progress-bar",
            "-k",
            "colab313",
            "--cwd",
            folder,
            notebook.name,
            folder / f"out_{notebook.name}",
            *parameters,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    TIMINGS[notebook.name] = time.monotonic() - start
    print(f"\n{notebook.name}: standalone run {TIMINGS[notebook.name]:.0f} s")
    assert result.returncode == 0, result.stderr[-4000:]
    text = outputs_text(nbformat.read(folder / f"out_{notebook.name}", as_version=4))
    if notebook.name[:2] in ("02", "03", "04"):
        assert re.search(r"pipeline: work_dir lacked .+ so it redid lesson\(s\) 01", text)
    if notebook.name.startswith("06"):
        assert "the hub is unreachable (offline mode: HF_HUB_OFFLINE is set)" in text
