"""Colab, simulated: every lesson runs alone from the wheel, in Colab's Python (3.13) and packages.

For the whole module: build the wheel; create a fresh virtual environment outside the repository
on top of a cached layer holding Colab's preinstalled packages at Colab's versions
(``tests/colab_runtime.py``); run the install cell's pip command in it; check that Colab's
torch, numpy, pandas, ipykernel and ipython are untouched. Then, for each lesson separately:
copy that one notebook into its own empty folder, append its "Try it yourself" solutions as
code cells (a learner runs them in the same runtime, after the lesson), and execute it with
papermill, offline, in a kernel of that environment (Colab's own ipykernel 6.17.1 and ipython
7.34.0), with an empty Hugging Face cache and API keys in the environment — as a learner gets
it from the lesson's Colab badge.

Each lesson runs once, with small training (``SMALL``); every check of a lesson's standalone
run reads that one execution: that it ran, that its solutions ran, what it wrote in its working
folder (the job record, metrics, learning curve, export) and that no key appears anywhere.
Lessons 04, 07 and 09 retrain lesson 03's model in ``pipeline.ensure``; the training cache
(``FACTORY_TRAINING_CACHE``, set for the test session in ``tests/conftest.py``) makes that one
training, shared with lesson 03's own run.

Each lesson runs through ``tools/silent_gaps.py``, which times every output as it arrives: no
cell may stay silent (no text, bar, table or plot) for more than :data:`MAX_SILENT_GAP` seconds,
or a learner takes it for a hung cell.

``COLAB_SIM_DEFAULTS=1`` runs the lessons with their own defaults instead (no ``SMALL``, no
training cache: lessons 04, 07 and 09 retrain lesson 03's model), for the standalone-time
benchmark ``benchmarks/standalone_lessons.py``; ``COLAB_SIM_REPORT`` names a JSON file that
collects each lesson's time and longest silent gap.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import colab_runtime as colab
import nbformat
import pytest
from notebook_runner import outputs_text
from test_exercise_solutions import solutions

from helpers.notebook import read_results

ROOT = Path(__file__).resolve().parents[2]
LESSONS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.ipynb"))
# standalone-ness is the point here, not accuracy: a few steps, and at most 80 rows per intent
# (the sample has ~280), so the lessons' classification and embedding passes are short too
SMALL = {"training_steps": 10, "max_samples": 80}
EXTRA = {
    "03_train_classifier.ipynb": {"wandb_project": "intent-tests"},
    "07_out_of_scope.ipynb": {"train_extras": True},  # the extras section runs here too
    "08_how_much_data.ipynb": {
        "curve_sizes": [8, 0],
        "curve_seeds": [1, 2],
        "training_epochs": 0.1,
    },
    "09_take_it_home.ipynb": {"timed_utterances": 5},
}
FAKE_KEYS = {
    "MISTRAL_API_KEY": "mk-TESTKEY-7f3a9c2e51d84b6fa0c3e9d1b2a4f6e8",
    "WANDB_API_KEY": "wb0123456789abcdef0123456789abcdef012345",
}
MAX_SILENT_GAP = 20.0  # seconds a cell may go without any output
DEFAULTS = os.environ.get("COLAB_SIM_DEFAULTS") == "1"
REPORT = os.environ.get("COLAB_SIM_REPORT")
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
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert colab.installed_versions(runtime["venv"], ["intent-classifier-helpers"]) == {
        "intent-classifier-helpers": version
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


def with_solutions(notebook: Path, out: Path) -> None:
    """``notebook`` with its solutions appended as code cells ``run-<cell id>``."""
    nb = nbformat.read(notebook, as_version=4)
    for cell_id, code in solutions(nb):
        cell = nbformat.v4.new_code_cell(code)
        cell.id = f"run-{cell_id}"
        nb.cells.append(cell)
    nbformat.write(nb, out)


@pytest.fixture(scope="module")
def lessons(runtime, module_tmp, training_cache):
    """``lessons(name)``: the lesson's standalone run (executed once, on first use):
    ``{"returncode", "stderr", "nb", "folder", "seconds"}``."""
    done: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name not in done:
            done[name] = run_alone(runtime, ROOT / "notebooks" / name, module_tmp(name[:2]))
        return done[name]

    return run


def run_alone(runtime: dict, notebook: Path, tmp: Path) -> dict:
    folder = tmp / "content"  # Colab's working folder, with this lesson only
    folder.mkdir()
    with_solutions(notebook, folder / notebook.name)
    env = {k: v for k, v in colab.clean_env().items() if not k.startswith(("JUPYTER", "HF_"))}
    env |= FAKE_KEYS | {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(tmp / "hf"),
        "JUPYTER_PATH": str(runtime["jupyter"]),
    }
    wanted = {} if DEFAULTS else SMALL | EXTRA.get(notebook.name, {})
    if DEFAULTS:  # a learner's first run: nothing trained before, by this lesson or another
        env.pop("FACTORY_TRAINING_CACHE", None)
    names = declared(notebook)
    assert set(EXTRA.get(notebook.name, {})) <= names, notebook.name
    # YAML, so a list stays a list (papermill's -p passes "[8, 0]" as a string)
    parameters = json.dumps({k: v for k, v in wanted.items() if k in names})
    gaps = folder.parent / "silent_gaps.json"
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            ROOT / "tools" / "silent_gaps.py",
            "-k",
            "colab313",
            "--cwd",
            folder,
            notebook.name,
            folder / f"out_{notebook.name}",
            "-y",
            parameters,
            "--report",
            gaps,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.monotonic() - start
    TIMINGS[notebook.name] = seconds
    report = json.loads(gaps.read_text()) if gaps.exists() else None
    print(f"\n{notebook.name}: standalone run {seconds:.0f} s; {result.stdout.strip()}")
    if REPORT and report is not None:
        path = Path(REPORT)
        table = json.loads(path.read_text()) if path.exists() else {}
        exercises = [c for c in report["cells"] if str(c.get("id")).startswith("run-")]
        table[notebook.name] = {
            "seconds": round(seconds, 1),  # kernel start and the appended solutions included
            "lesson_seconds": round(seconds - sum(c["seconds"] for c in exercises), 1),
            "exercises_seconds": round(sum(c["seconds"] for c in exercises), 1),
            "longest_gap": report["longest_gap"],
            "longest_gap_cell": report["longest_gap_cell"],
            "failed": report["failed"],
            "parameters": "defaults" if DEFAULTS else wanted,
        }
        path.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    out = folder / f"out_{notebook.name}"
    nb = nbformat.read(out, as_version=4) if out.exists() else None
    return {
        "returncode": result.returncode,
        "stderr": result.stderr,
        "nb": nb,
        "folder": folder,
        "work": folder / "artifacts",
        "seconds": seconds,
        "gaps": report,
    }


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.name[:2])
def test_lesson_runs_alone_from_its_badge(lessons, notebook):
    run = lessons(notebook.name)
    assert run["returncode"] == 0, run["stderr"][-4000:]
    text = outputs_text(run["nb"])
    if notebook.name[:2] in ("02", "03", "04"):
        assert re.search(r"pipeline: work_dir lacked .+ so it redid lesson\(s\) 01", text)
    if notebook.name.startswith("06"):  # a CPU runtime: the English encoder and TF-IDF
        assert "on a CPU runtime it is not downloaded by default" in text


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.name[:2])
def test_no_cell_is_silent_for_long(lessons, notebook):
    """Every cell shows something (text, a progress bar, a table) at least every 20 s."""
    run = lessons(notebook.name)
    report = run["gaps"]
    assert report is not None, run["stderr"][-4000:]
    assert report["cells"], "the recorder saw no cell run"
    silent = [c for c in report["cells"] if c["longest_gap"] > MAX_SILENT_GAP]
    assert not silent, (
        f"{notebook.name}: cells of the executed notebook silent for more than "
        f"{MAX_SILENT_GAP:g} s: {silent}"
    )


@pytest.mark.parametrize("notebook", LESSONS, ids=lambda p: p.name[:2])
def test_every_solution_runs_after_its_lesson(lessons, notebook):
    run = lessons(notebook.name)
    assert run["nb"] is not None, run["stderr"][-4000:]
    ran = [c for c in run["nb"].cells if c.get("id", "").startswith("run-")]
    assert len(ran) >= 2
    for cell in ran:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{cell.id}: {errors[0]['ename']}: {errors[0]['evalue']}"
        assert cell.execution_count is not None, f"{cell.id} did not run"


def test_no_key_from_the_environment_appears_anywhere(lessons):
    for notebook in LESSONS:
        run = lessons(notebook.name)
        for path in run["folder"].rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                data = path.read_bytes()
                for key in FAKE_KEYS.values():
                    assert key.encode() not in data, path


def test_lesson_03_records_its_job_and_echoes_wandb_without_its_key(lessons):
    run = lessons("03_train_classifier.ipynb")
    job = json.loads((run["work"] / "job.json").read_text())
    assert job["status"] == "SUCCESS"
    assert job["base_model"] == "minilm-l6-v2"
    assert job["hyperparameters"]["training_steps"] == SMALL["training_steps"]
    assert job["train_seconds"] >= 0 and job["service"].startswith("http://127.0.0.1:")
    assert job["fine_tuned_model"].startswith("ft:classifier:minilm-l6-v2:")
    assert '"project": "intent-tests"' in outputs_text(run["nb"])


def test_lesson_04_writes_the_metrics_its_results_cell_shows(lessons):
    run = lessons("04_inference_evaluation.ipynb")
    metrics = json.loads((run["work"] / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "n_test", "model", "routing"} <= set(metrics)
    assert metrics["n_test"] > 100 and 0 <= metrics["accuracy"] <= 1
    assert set(metrics["comparison"]) == {"minilm-l6-v2", "tfidf-logreg"}
    assert read_results(run["nb"]) == metrics  # record() shows what it writes


def test_lesson_08_learning_curve_has_every_point(lessons):
    run = lessons("08_how_much_data.ipynb")
    results = json.loads((run["work"] / "learning_curve.json").read_text())
    points = {(p["method"], p["examples_per_intent"]) for p in results["curve"]}
    methods = ("TF-IDF", "frozen embeddings + LR", "fine-tuned encoder")
    assert points == {(m, n) for m in methods for n in (8, 0)}
    assert all(0 <= p["accuracy"] <= 1 and 0 <= p["macro_f1"] <= 1 for p in results["curve"])
    assert set(results["spread_at_smallest"]) == set(methods)


def test_lesson_09_exports_the_lesson_3_model(lessons):
    run = lessons("09_take_it_home.ipynb")
    work = run["work"]
    results = json.loads((work / "export.json").read_text())
    job = json.loads((work / "job.json").read_text())
    assert results["model"] == job["fine_tuned_model"]
    assert results["agreement_with_service"]["ONNX fp32"] == 1.0
    assert results["fp32_max_difference_below_1e-4"] is True
    assert results["agreement_with_service"]["ONNX int8"] >= 0.9
    sizes = results["size_mb"]
    # int8 keeps the feed-forward blocks, the heads and the votes' training vectors in float32
    # (helpers/export.py): about half the size (49.8 of 96.0 MB on the sample)
    assert sizes["ONNX int8"] < 0.6 * sizes["ONNX fp32"]
    for variant in ("fp32", "int8"):
        folder = work / "export" / variant
        assert {"model.onnx", "tokenizer.json", "labels.json", "predict.py", "README.md"} <= {
            p.name for p in folder.iterdir()
        }
