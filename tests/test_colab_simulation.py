"""Colab has no clone: a lesson must run with nothing but the installed wheel.

Builds the wheel, installs it (with its pinned dependencies) into a fresh virtual
environment outside the repository, copies lessons 1 and 2 into an empty folder and runs them
there with papermill, offline. The bundled sample must come from the installed package.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def test_lessons_run_from_the_wheel_alone(tmp_path):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(ROOT)])
    wheel = next(wheels.glob("intent_classifier_helpers-*.whl"))

    venv = tmp_path / "colab-venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    # torch first and pinned, as the Makefile does, so pip never pulls a CUDA build.
    run([str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0"])
    run([str(python), "-m", "pip", "install", "--quiet", str(wheel)])

    where = run([str(python), "-c", "import helpers; print(helpers.__file__)"], cwd=tmp_path)
    assert str(venv) in where.stdout, "helpers must come from the fresh venv, not the checkout"

    lesson = tmp_path / "colab"
    lesson.mkdir()
    for name in ("01_explore_data.ipynb", "02_format_data.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, lesson / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    for name in ("01_explore_data.ipynb", "02_format_data.ipynb"):
        run([str(python), "-m", "papermill", "--no-progress-bar", "-k", "python3",
             name, f"out_{name}"], cwd=lesson, env=env)

    executed = nbformat.read(lesson / "out_01_explore_data.ipynb", as_version=4)
    text = json.dumps([c.get("outputs", []) for c in executed.cells])
    assert "OFFLINE FALLBACK" in text and "16 intents" in text
    assert (lesson / "artifacts" / "train.jsonl").exists()  # work_dir is relative to the folder
