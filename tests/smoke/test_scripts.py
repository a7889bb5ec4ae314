"""Smoke tier: every script in ``benchmarks/`` and ``tools/`` parses its arguments and runs.

* ``test_help`` (fast): ``python SCRIPT --help`` exits 0 and prints its usage, for every script
  found by globbing (a ``*.py`` with ``if __name__ == "__main__"``); the runs go 4 at a time.
* ``test_tiny_case`` (``slow``): a real run of each script's main path with its smallest
  arguments, on the tiny synthetic data of ``smoke_data.py`` (``--data-root``), writing only in
  a temporary folder of its own (``--out``); each checks what the script wrote or printed. They
  run 2 at a time (:data:`TINY_WORKERS`), in the order of the tests, and none may write into
  ``benchmarks/results/``.
* A script without an entry in :data:`TINY_CASES`, or a library module of ``benchmarks/``
  without one in :data:`LIBRARY_CHECKS`, fails ``test_every_script_has_a_tiny_case``.

The scripts run with one torch/OpenMP thread: they are not measured here, and on a shared
2-core machine thread pools that wait on each other make them several times slower.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType

import nbformat
import pytest
from notebook_files import write_notebook
from smoke_data import BANKING, CLINC, SNIPS

REPO = Path(__file__).resolve().parents[2]
FOLDERS = ("benchmarks", "tools")
HELP_TIMEOUT = 180
TINY_TIMEOUT = 600
TINY_WORKERS = 2  # tiny cases at once: each runs with one thread
THREADS = {"INTENT_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _is_script(path: Path) -> bool:
    return 'if __name__ == "__main__":' in path.read_text(encoding="utf-8")


ALL_MODULES = sorted(
    path.relative_to(REPO).as_posix() for folder in FOLDERS for path in (REPO / folder).glob("*.py")
)
SCRIPTS = [name for name in ALL_MODULES if _is_script(REPO / name)]
LIBRARIES = [name for name in ALL_MODULES if name not in SCRIPTS]


# -- running a script ---------------------------------------------------------------------------


def run(
    script: str,
    *args: object,
    env: dict[str, str],
    expect: int = 0,
    timeout: float = TINY_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """``python SCRIPT ARGS`` from the repository root; fails with its output unless it exits
    ``expect``."""
    done = subprocess.run(
        [sys.executable, script, *map(str, args)],
        cwd=REPO,
        env={**env, **THREADS},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == expect, (
        f"{script} {' '.join(map(str, args))} exited {done.returncode} (expected {expect})\n"
        f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
    )
    return done


def rows(path: Path) -> list[dict]:
    """The JSON lines a script appended to ``path``."""
    assert path.is_file(), f"{path} was not written"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def has_keys(row: dict, *keys: str) -> None:
    missing = [k for k in keys if k not in row]
    assert not missing, f"missing {missing} in {sorted(row)}"


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


# -- --help: fast, every script ------------------------------------------------------------------


def _selected(request: pytest.FixtureRequest, test: str) -> list[str]:
    """The ``script`` parameters of the selected items of ``test``, in their order."""
    return [
        item.callspec.params["script"]
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == test
    ]


@pytest.fixture(scope="module")
def help_runs(request, script_env) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """The selected ``SCRIPT --help`` runs, started together (4 at a time) when the first test
    asks."""

    def one(script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, script, "--help"],
            cwd=REPO,
            env={**script_env, **THREADS},
            capture_output=True,
            text=True,
            timeout=HELP_TIMEOUT,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        yield {script: pool.submit(one, script) for script in _selected(request, "test_help")}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script, help_runs):
    done = help_runs[script].result()
    assert done.returncode == 0, f"{script} --help exited {done.returncode}:\n{done.stderr[-4000:]}"
    name = Path(script).name
    assert done.stdout.startswith(f"usage: {name}"), done.stdout[:500]
    assert "-h, --help" in done.stdout
    assert len(done.stdout.splitlines()) > 3, "no description or options"


def test_scripts_are_found():
    assert "benchmarks/encoder_recipe.py" in SCRIPTS
    assert "tools/execute_notebooks.py" in SCRIPTS
    assert "benchmarks/bench_data.py" in LIBRARIES


# -- the library module: imported, one tiny call -------------------------------------------------


def _import(name: str) -> ModuleType:
    path = REPO / name
    spec = importlib.util.spec_from_file_location(f"smoke_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_bench_data(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench_data = _import("benchmarks/bench_data.py")
    assert all(isinstance(f, str) for f in bench_data.cpu_flags())
    banking = bench_data.load("banking77", data_root)
    assert [len(banking[s][0]) for s in ("train", "validation", "test")] == [40, 0, 20]
    assert sorted(set(banking["train"][1])) == sorted(BANKING)
    clinc = bench_data.load("clinc150", data_root)
    assert "oos" not in set(clinc["train"][1] + clinc["test"][1])
    assert sorted(set(clinc["validation"][1])) == sorted(CLINC)
    # the stand-in for MASSIVE samples 692 SNIPS rows per intent and 600 oos rows: fewer here
    monkeypatch.setattr(bench_data, "SNIPS_PER_INTENT", 10)
    monkeypatch.setattr(bench_data, "OOS_ROWS", 10)
    proxy = bench_data.load("massive_proxy", data_root)
    sizes = [len(proxy[s][0]) for s in ("train", "validation", "test")]
    assert sum(sizes) == 7 * 10 + 8 * 18 + 10 and sizes[0] > sizes[1] > 0
    assert set(proxy["train"][1]) == {*SNIPS, *CLINC, "oos"}
    with pytest.raises(ValueError, match="unknown dataset"):
        bench_data.load("nope", data_root)


LIBRARY_CHECKS: dict[str, Callable[[Path, pytest.MonkeyPatch], None]] = {
    "benchmarks/bench_data.py": check_bench_data,
}


@pytest.mark.parametrize("name", LIBRARIES)
def test_library(name, data_root, monkeypatch):
    if name not in LIBRARY_CHECKS:
        pytest.fail(f"{name} has no check in LIBRARY_CHECKS (tests/smoke/test_scripts.py)")
    LIBRARY_CHECKS[name](data_root, monkeypatch)


# -- tiny cases: one per script (slow) -----------------------------------------------------------


def tiny_bench_batch(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "batch.jsonl"
    done = run(
        "benchmarks/bench_batch.py",
        *("--workers", 1, "--notebooks", "01", "--grid", "max_samples=600", "--steps", 0),
        *("--repeats", 1, "--out", out),
        env=env,
    )
    (row,) = rows(out)
    has_keys(row, "kernel_seconds", "service_start_seconds", "cluster_start_seconds", "load_end")
    (sweep,) = row["sweeps"]
    assert sweep["workers"] == 1 and sweep["points"] == 1 and sweep["notebooks_per_point"] == 1
    assert len(row["kernel_seconds"]) == len(row["service_start_seconds"]) == 1
    assert "| --workers | wall (s) | points |" in done.stdout
    assert "fixed cost per point: 1 kernels" in done.stdout


def tiny_bench_batch_order(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "order.jsonl"
    run(
        "benchmarks/bench_batch_order.py",
        *("--dataset", "banking77", "--data-root", data, "--limit", 20, "--steps", 2),
        *("--repeats", 1, "--data-source", data / "massive_en", "--out", out),
        env=env,
    )
    (row,) = rows(out)
    assert row["dataset"] == "banking77" and row["texts"] == 20
    assert set(row["utt_per_s"]) == {
        "classify_file",
        "classify_sorted",
        "embed_file",
        "embed_sorted",
    }
    assert row["same_top_label"] == 1.0 and row["max_score_difference"] < 1e-3


def tiny_bench_cancel(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "cancel.jsonl"
    run("benchmarks/bench_cancel.py", "--after", 0.5, "--out", out, env=env)
    (row,) = rows(out)
    assert row["status"] == "CANCELLED", row
    assert row["cancel_after_running_s"] == 0.5 and row["seconds_to_cancelled"] < 120


def tiny_bench_export(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "export.jsonl"
    done = run(
        "benchmarks/bench_export.py",
        *("--steps", 2, "--max-texts", 64, "--latency-samples", 3, "--repeats", 1),
        *("--data-root", data, "--data-source", data / "massive_en", "--out", out),
        env=env,
    )
    (row,) = rows(out)
    assert row["texts"] == "banking77 test" and row["n_texts"] == 20
    assert (
        set(row["ratios"])
        == set(row["met"])
        == {
            "service_vs_inprocess_throughput",
            "onnx_fp32_speedup",
            "onnx_int8_speedup",
            "int8_agreement",
            "service_vs_inprocess_p50",
        }
    )
    assert row["onnx_fp32_agreement"] >= 0.95 and row["service_agreement"] >= 0.95
    assert row["n_agreement_texts"] == 60
    assert set(row["size_mb"]) == {"safetensors", "onnx_fp32", "onnx_int8"}
    assert "| measure | value | target | met |" in done.stdout
    assert "| variant | utt/s (64) | p50 ms |" in done.stdout


def tiny_bench_fairness(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "fairness.jsonl"
    done = run(
        "benchmarks/bench_fairness.py",
        *("--big", 400, "--every", 0.1, "--waiting", 4, "--out", out),
        env=env,
    )
    (row,) = rows(out)
    assert row["big_inputs"] == 400 and row["one_text_alone"]["n"] == 10
    assert row["queue"]["waiting"] == 4 and row["queue"]["errors"] == []
    assert set(row["queue"]["routes_s"]) == {"/health", "/v1/models", "/v1/files"}
    assert "| one text during it, p50 / p95 / max" in done.stdout


def tiny_bench_load(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "load.jsonl"
    done = run(
        "benchmarks/bench_load.py",
        *("--duration", 1, "--clients", 2, "--batch-seconds", 1, "--train-examples", 40),
        *("--steps", 2, "--base-model", "tfidf-logreg", "--data-root", data, "--out", out),
        env=env,
    )
    (row,) = rows(out)
    assert row["base_model"] == "tfidf-logreg" and set(row["loads"]) == {"raw", "httpx"}
    assert all(figures["errors"] == 0 for figures in row["loads"].values()), row["loads"]
    assert row["batch"]["batches"] >= 1
    statuses = (row[k] for k in ("at_char_limit_status", "one_8mib_input_status"))
    assert tuple(statuses) == (200, 413) and row["over_body_limit_status"] == 413
    assert "| figure | value | target |" in done.stdout


def tiny_bench_oos(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "oos.jsonl"
    done = run(
        "benchmarks/bench_oos.py",
        *("--dataset", "clinc150", "--steps", 2, "--data-root", data, "--out", out),
        env=env,
    )
    found = rows(out)
    assert [r["method"] for r in found] == [
        "max_softmax",
        "margin",
        "mahalanobis",
        "temperature",
        "nearest_neighbour",
        "nearest_entropy",
    ]
    for r in found:
        has_keys(r, "valid_auroc", "auroc", "oos_recall", "in_scope_accuracy", "recommended")
        assert r["training_steps"] == 2
        assert r["sizes"] == {
            "train": 80,
            "validation": 32,
            "test": 32,
            "oos_validation": 6,
            "oos_test": 10,
        }
    assert "| method | valid AUROC | test AUROC |" in done.stdout


def tiny_bench_service(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "service.jsonl"
    done = run(
        "benchmarks/bench_service.py",
        *("--datasets", "banking77", "clinc150", "--models", "tfidf-logreg"),
        *("--latency-samples", 5, "--data-root", data, "--out", out),
        env=env,
    )
    banking, clinc = rows(out)
    for row in (banking, clinc):
        assert row["model"] == "tfidf-logreg"
        has_keys(row, "accuracy", "macro_f1", "train_seconds", "latency_p50_ms", "latency_p95_ms")
    assert (banking["n_train"], banking["n_valid"], banking["n_test"]) == (40, 0, 20)
    assert clinc["n_valid"] > 0
    assert "| data set | model | steps | test acc |" in done.stdout


def tiny_bench_validation_memory(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "validation_memory.jsonl"
    run("benchmarks/bench_validation_memory.py", "--sizes", 0.05, "--out", out, env=env)
    (row,) = rows(out)
    assert (row["mib"], row["model"], row["status"], row["error"]) == (
        0.05,
        "tfidf-logreg",
        "VALIDATED",
        "",
    )
    assert row["lines"] > 100
    has_keys(row, "upload_peak_growth_mib", "validation_peak_growth_mib", "validation_seconds")


def tiny_budgets(tmp: Path, data: Path, env: dict[str, str]) -> None:
    """A fresh clone of HEAD running a quick command instead of ``make`` (``--instead``)."""
    out = tmp / "budgets.jsonl"
    command = "git status --short"
    run(
        "benchmarks/budgets.py",
        *("--steps", "test-fast", "--instead", command, "--out", out),
        env={**env, "TMPDIR": str(tmp)},  # the clone and its log
    )
    (row,) = rows(out)
    assert (row["step"], row["command"], row["exit"]) == ("test-fast", command, 0)
    assert row["within_budget"] and row["venv_mb"] is None and row["last_lines"] == []
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True)
    assert row["commit"] == head.stdout.decode().strip()


def tiny_contrastive_selection(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "contrastive.jsonl"
    script = "benchmarks/contrastive_selection.py"
    run(
        script,
        *("--points", "0.5:0.1", "--seeds", 0, "--steps", 2, "--data-root", data, "--out", out),
        env=env,
    )
    (row,) = rows(out)
    assert (row["weight"], row["temperature"], row["training_steps"]) == (0.5, 0.1, 2)
    has_keys(row, "validation_accuracy", "official_accuracy", "nearest_entropy_weights")
    assert set(row["valid_auroc"]) == {
        "max_softmax",
        "margin",
        "mahalanobis",
        "temperature",
        "nearest_neighbour",
        "nearest_entropy",
    }
    table = run(script, "--table", "--out", out, env=env).stdout
    assert table.startswith("| weight | temperature | seed | validation acc. |")
    assert "| 0.5 | 0.1 | 0 |" in table


def tiny_encoder_recipe(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "encoder_recipe.jsonl"
    run(
        "benchmarks/encoder_recipe.py",
        *("--dataset", "banking77", "--steps", 2, "--baselines"),
        *("--data-root", data, "--out", out),
        env=env,
    )
    encoder, tfidf, frozen = rows(out)
    assert encoder["method"].startswith("encoder FT") and encoder["recipe"]["training_steps"] == 2
    has_keys(encoder, "test_accuracy", "macro_f1", "throughput_per_s_batch64", "latency_p50_ms")
    assert tfidf["method"].startswith("tfidf") and frozen["method"].startswith("frozen MiniLM")
    assert all(r["n_train"] == 40 and r["n_test"] == 20 for r in (encoder, tfidf, frozen))


def tiny_gpu_check(tmp: Path, data: Path, env: dict[str, str]) -> None:
    done = run(
        "benchmarks/gpu_check.py",
        *("--data-root", data, "--data-source", data / "massive_en", "--cpu-steps", 2),
        env=env,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("data=massive_en")]
    assert lines, done.stdout
    assert "train_rows=480" in lines[0] and "cpu_reload_agreement=32/32" in lines[0]
    if "no GPU found" in done.stdout:  # the CPU path: the tiny check only
        assert "device=cpu" in lines[0] and "steps=2 " in lines[0]


def tiny_memory_selection(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "memory.jsonl"
    done = run(
        "benchmarks/memory_selection.py",
        *("--seeds", 0, "--steps", 2, "--data-root", data, "--out", out),
        env=env,
    )
    found = rows(out)
    assert len(found) == 1 + 3 * 2 * 4 and found[0]["point"] == "none"
    for r in found:
        assert r["seeds"] == [0] and len(r["validation"]) == len(r["official"]) == 1
        assert r["validation_n"] == 60 and r["official_n"] == 30
    assert "| votes (k, temperature, weight) |" in done.stdout


def tiny_recipe_compare(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "recipe_compare.jsonl"
    script = "benchmarks/recipe_compare.py"
    run(script, *("--seeds", 0, "--steps", 2, "--data-root", data, "--out", out), env=env)
    found = rows(out)
    assert [(r["kind"], r.get("recipe"), r.get("set")) for r in found] == [
        ("run", "plain", None),
        ("run", "extras", None),
        ("paired", None, "test"),
        ("paired", None, "official"),
    ]
    assert [r["ships_training_vectors"] for r in found[:2]] == [False, True]
    assert found[0]["test_n"] == found[2]["n"] and found[2]["seeds"] == [0]
    diff = found[2]["extras_mean"] - found[2]["plain_mean"]
    assert abs(found[2]["difference_points"] - diff) < 0.02
    table = run(script, "--table", "--out", out, env=env).stdout
    assert table.startswith("| set | n | plain (per seed) |") and "| official |" in table


def tiny_lesson3_part_a(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "part_a.jsonl"
    script = "benchmarks/lesson3_part_a.py"
    done = run(script, "--until", "nb03-t05", "--out", out, env=env)  # sections 1 only
    (row,) = rows(out)
    assert row["cells"] == 4 and row["part_a_seconds"] > 0 and "flags" in row["machine"]
    assert done.stdout.startswith("part A (4 cells): ")
    run(script, "--until", "nb03-t01", "--out", out, env=env, expect=2)  # nothing to time


def tiny_massive_reference(tmp: Path, data: Path, env: dict[str, str]) -> None:
    from helpers import reference

    out = tmp / "massive_en.json"
    script = "benchmarks/massive_reference.py"
    run(script, *("--data-source", "sample", "--lessons", "01", "02", "--out", out), env=env)
    found = json.loads(out.read_text())
    assert found["written_by"] == script and found["data_source"] == "sample"
    assert sorted(found["lessons"]) == ["01_explore_data", "02_format_data"]
    assert found["lessons"]["02_format_data"]["errors"] == 0
    table = reference.beside("01_explore_data", found["lessons"]["01_explore_data"], path=out)
    assert (table["this run"] == table["MASSIVE (reference run)"]).all()  # the same run twice
    run(script, "--lessons", "06", "--data-source", "sample", "--out", out, env=env, expect=2)
    before = json.loads(out.read_text())
    run(script, *("--data-source", "sample", "--lessons", "02", "--out", out, "--update"), env=env)
    after = json.loads(out.read_text())
    assert after["lessons"] == before["lessons"] and sorted(after["updated"]) == ["02_format_data"]
    assert after["commit"] == before["commit"]
    missing = tmp / "none.json"
    run(
        script,
        "--lessons",
        "02",
        "--data-source",
        "sample",
        "--out",
        missing,
        "--update",
        env=env,
        expect=2,
    )


def tiny_recipe_selection(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "recipe_selection.jsonl"
    script = "benchmarks/recipe_selection.py"
    run(
        script,
        *("--candidates", "default", "--seeds", 0, "--steps", 2),
        *("--data-root", data, "--out", out),
        env=env,
    )
    (row,) = rows(out)
    assert row["candidate"] == "default" and row["config"]["training_steps"] == 2
    assert (row["n_train"], row["n_validation"]) == (480, 60)
    has_keys(row, "val_accuracy", "val_macro_f1", "cpu_s")
    table = run(script, "--table", "--out", out, env=env).stdout
    assert table.startswith("| candidate | seed | val acc. |") and "| default | 0 |" in table


def tiny_recipe_table(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "recipe_table.jsonl"
    script = "benchmarks/recipe_table.py"
    run(
        script,
        *("--rows", "tfidf", "frozen", "default", "--seeds", 0, "--other", "banking77"),
        *("--steps", 2, "--data-root", data, "--out", out),
        env=env,
    )
    found = rows(out)
    assert [(r["dataset"], r["method"].split(" (")[0].split(",")[0]) for r in found] == [
        ("massive_en", "TF-IDF + logistic regression C=5"),
        ("massive_en", "frozen MiniLM embeddings + logistic regression C=10"),
        ("massive_en", "default recipe"),
        ("banking77", "default recipe"),
    ]
    assert all(r["recipe"]["training_steps"] == 2 for r in found[2:])
    assert [r["n_train"] for r in found] == [480] * 3 + [40]
    table = run(script, "--table", "--out", out, env=env).stdout
    assert table.startswith("| data set | method | seed | test acc. |")
    assert len(table.strip().splitlines()) == 2 + 4
    run(
        script,
        *("--rows", "default", "--seeds", 0, "--other", "--recipe", "extras"),
        *("--steps", 2, "--data-root", data, "--out", out),
        env=env,
    )
    extras = rows(out)[4:]
    assert [r["method"] for r in extras] == [
        "extras recipe",
        "extras recipe, without the nearest-example votes",
    ]
    assert extras[0]["recipe"]["contrastive_weight"] > 0 and extras[0]["votes"]


def tiny_scale_check(tmp: Path, data: Path, env: dict[str, str]) -> None:
    out = tmp / "scale.jsonl"
    run(
        "benchmarks/scale_check.py",
        *("--rows", 60, "--steps", 2, "--data-root", data, "--out", out),
        env=env,
    )
    (row,) = rows(out)
    assert (row["rows"], row["steps"]) == (60, 2) and row["labels"] > 1
    has_keys(row, "train_wall_s", "peak_rss_mb", "frozen_cache", "stages")


def tiny_check_large_files(tmp: Path, data: Path, env: dict[str, str]) -> None:
    big, small = tmp / "big.bin", tmp / "small.txt"
    big.write_bytes(b"x" * 3 * 1024)
    small.write_text("small\n")
    done = run("tools/check_large_files.py", "--max-kb", 2, big, small, env=env, expect=1)
    assert str(big) in done.stderr and str(small) not in done.stderr
    assert "over the 2 kB limit" in done.stderr
    run("tools/check_large_files.py", "--max-kb", 2, small, env=env)


def tiny_execute_notebooks(tmp: Path, data: Path, env: dict[str, str]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny notebook"),
        nbformat.v4.new_code_cell("from pathlib import Path\nprint(6 * 7, Path.cwd().name)"),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="stale output")]
    folder = tmp / "book"
    folder.mkdir()
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    done = run("tools/execute_notebooks.py", "--timeout", 120, path, env=env)
    assert f"{path}: executed in" in done.stdout
    cell = nbformat.read(path, as_version=4).cells[1]
    assert [o.get("text") for o in cell.outputs] == ["42 book\n"]  # run in its own folder
    assert cell.execution_count == 1 and "execution" not in cell.metadata
    run("tools/execute_notebooks.py", tmp / "missing.ipynb", env=env, expect=2)


def tiny_release(tmp: Path, data: Path, env: dict[str, str]) -> None:
    root = tmp / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "9.9.9"\n')
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## v9.9.9\n\n- the first release\n")
    who = {"GIT_AUTHOR_NAME": "smoke", "GIT_AUTHOR_EMAIL": "smoke@example.invalid"}
    who |= {"GIT_COMMITTER_NAME": "smoke", "GIT_COMMITTER_EMAIL": "smoke@example.invalid"}
    git_env = {**env, **who}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", *args], cwd=root, env=git_env, check=True, capture_output=True)
    done = run("tools/release.py", "--root", root, "--dry-run", env=git_env)
    assert "v9.9.9: every check passed (dry run" in done.stdout
    done = run("tools/release.py", "--root", root, "--no-build", env=git_env)
    assert "tagged v9.9.9" in done.stdout
    tags = subprocess.run(["git", "tag", "--list"], cwd=root, capture_output=True, text=True)
    assert tags.stdout.split() == ["v9.9.9"]
    (root / "CHANGELOG.md").write_text("# Changelog\n")  # uncommitted: refused
    done = run("tools/release.py", "--root", root, "--dry-run", env=git_env, expect=1)
    assert "release refused: the work tree has uncommitted changes" in done.stderr


def tiny_sync_notebooks(tmp: Path, data: Path, env: dict[str, str]) -> None:
    """On a copy of the project (``--root``): the repository's notebooks are never written."""
    before = _snapshot(REPO / "notebooks")
    root = tmp / "project"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(REPO / "pyproject.toml", root)
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        shutil.copy(path, root / "notebooks")
    script = "tools/sync_notebooks.py"
    run(script, "--root", root, env=env)  # whatever the repository's state, in sync after it
    first = sorted((root / "notebooks").glob("*.ipynb"))[0]
    nb = nbformat.read(first, as_version=4)
    header = next(c for c in nb.cells if "header" in c.metadata.get("tags", []))
    header.source = "an edited badge"
    nbformat.write(nb, first)
    done = run(script, "--check", "--root", root, env=env, expect=1)
    assert "out of date" in done.stdout and first.name in done.stdout
    assert run(script, "--root", root, env=env).stdout.strip() == f"updated: {first.name}"
    done = run(script, "--check", "--root", root, env=env)
    assert done.stdout.strip() == "would update: nothing"
    nb = nbformat.read(first, as_version=4)
    header = next(c for c in nb.cells if "header" in c.metadata.get("tags", []))
    assert "colab.research.google.com" in header.source
    assert _snapshot(REPO / "notebooks") == before


def tiny_silent_gaps(tmp: Path, data: Path, env: dict[str, str]) -> None:
    sleep = "import time\nprint('start', flush=True)\ntime.sleep(pause)"
    path = write_notebook(tmp / "gaps.ipynb", "pause = 0.1", sleep, "print('quick')")
    nb = nbformat.read(path, as_version=4)
    report = tmp / "gaps.json"
    args = (path, tmp / "out.ipynb", "-y", '{"pause": 1.5}', "--report", report)
    done = run("tools/silent_gaps.py", *args, "--max-gap", 1, env=env, expect=3)
    assert "printed nothing for 1.5 s (limit 1 s)" in done.stderr
    found = json.loads(report.read_text())
    assert not found["failed"] and found["longest_gap_cell"] == 2  # after the injected cell
    assert [c["id"] for c in found["cells"]][2:] == [c.id for c in nb.cells[1:]]
    assert 1.5 <= found["longest_gap"] < 3 and len(found["cells"]) == 4
    quick = found["cells"][3]
    assert quick["outputs"] == 1 and quick["longest_gap"] < 1
    run("tools/silent_gaps.py", *args, "--max-gap", 5, env=env)
    nb.cells.append(nbformat.v4.new_code_cell("1 / 0"))
    nbformat.write(nb, path)
    done = run(
        "tools/silent_gaps.py", path, tmp / "out.ipynb", "--report", report, env=env, expect=1
    )
    assert "ZeroDivisionError" in done.stderr and json.loads(report.read_text())["failed"]


def tiny_standalone_lessons(tmp: Path, data: Path, env: dict[str, str]) -> None:
    # the real run is the Colab simulation with every lesson's defaults (minutes): here the
    # script tabulates a report of that shape and judges it against the targets
    row = {"seconds": 95.2, "longest_gap": 4.0, "longest_gap_cell": 7, "failed": False}
    report = tmp / "standalone_lessons.json"
    report.write_text(json.dumps({"01_a.ipynb": row, "02_b.ipynb": {**row, "seconds": 12.0}}))
    done = run("benchmarks/standalone_lessons.py", "--from-report", report, env=env)
    assert "| 01_a.ipynb | 95 s | 0 s | 4.0 s (7) | yes |" in done.stdout
    report.write_text(json.dumps({"03_c.ipynb": {**row, "longest_gap": 31.5}}))
    done = run("benchmarks/standalone_lessons.py", "--from-report", report, env=env, expect=1)
    assert "| 03_c.ipynb | 95 s | 0 s | 31.5 s (7) | no |" in done.stdout
    # the lesson's own time is judged, not the exercises appended after it
    long = {**row, "seconds": 250.0, "lesson_seconds": 170.0, "exercises_seconds": 80.0}
    machine = {"cpu": "x86_64", "cores": 2, "flags": ["avx2", "avx512f"]}
    report.write_text(json.dumps({"machine": machine, "lessons": {"06_d.ipynb": long}}))
    done = run("benchmarks/standalone_lessons.py", "--from-report", report, env=env)
    assert "| 06_d.ipynb | 170 s | 80 s | 4.0 s (7) | yes |" in done.stdout
    assert "2 cores; CPU flags: avx2 avx512f" in done.stdout


TINY_CASES: dict[str, Callable[[Path, Path, dict[str, str]], None]] = {
    "benchmarks/bench_batch.py": tiny_bench_batch,
    "benchmarks/bench_batch_order.py": tiny_bench_batch_order,
    "benchmarks/bench_cancel.py": tiny_bench_cancel,
    "benchmarks/bench_export.py": tiny_bench_export,
    "benchmarks/bench_fairness.py": tiny_bench_fairness,
    "benchmarks/bench_load.py": tiny_bench_load,
    "benchmarks/bench_oos.py": tiny_bench_oos,
    "benchmarks/bench_service.py": tiny_bench_service,
    "benchmarks/bench_validation_memory.py": tiny_bench_validation_memory,
    "benchmarks/budgets.py": tiny_budgets,
    "benchmarks/contrastive_selection.py": tiny_contrastive_selection,
    "benchmarks/encoder_recipe.py": tiny_encoder_recipe,
    "benchmarks/gpu_check.py": tiny_gpu_check,
    "benchmarks/lesson3_part_a.py": tiny_lesson3_part_a,
    "benchmarks/massive_reference.py": tiny_massive_reference,
    "benchmarks/memory_selection.py": tiny_memory_selection,
    "benchmarks/recipe_compare.py": tiny_recipe_compare,
    "benchmarks/recipe_selection.py": tiny_recipe_selection,
    "benchmarks/recipe_table.py": tiny_recipe_table,
    "benchmarks/scale_check.py": tiny_scale_check,
    "benchmarks/standalone_lessons.py": tiny_standalone_lessons,
    "tools/check_large_files.py": tiny_check_large_files,
    "tools/execute_notebooks.py": tiny_execute_notebooks,
    "tools/release.py": tiny_release,
    "tools/silent_gaps.py": tiny_silent_gaps,
    "tools/sync_notebooks.py": tiny_sync_notebooks,
}


def test_every_script_has_a_tiny_case():
    assert sorted(TINY_CASES) == SCRIPTS, (
        "each script in benchmarks/ and tools/ needs a tiny case in TINY_CASES "
        f"(tests/smoke/test_scripts.py): missing {sorted(set(SCRIPTS) - set(TINY_CASES))}, "
        f"stale {sorted(set(TINY_CASES) - set(SCRIPTS))}"
    )
    assert sorted(LIBRARY_CHECKS) == LIBRARIES


@pytest.fixture(scope="module")
def tiny_runs(request, tmp_path_factory, data_root, script_env) -> Iterator[dict[str, Future]]:
    """The selected tiny cases, :data:`TINY_WORKERS` at a time in threads (each script uses one
    core), started when the first of them is reached; each test then waits for its own."""
    selected = [s for s in _selected(request, "test_tiny_case") if s in TINY_CASES]
    pool = ThreadPoolExecutor(max_workers=TINY_WORKERS)
    try:
        yield {
            script: pool.submit(
                TINY_CASES[script],
                tmp_path_factory.mktemp(Path(script).stem),
                data_root,
                script_env,
            )
            for script in selected
        }
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def results_before() -> dict[str, tuple[int, int]]:
    return _snapshot(REPO / "benchmarks" / "results")


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_tiny_case(script, results_before, tiny_runs):
    if script not in TINY_CASES:
        pytest.fail(f"{script} has no tiny case in TINY_CASES (tests/smoke/test_scripts.py)")
    tiny_runs[script].result()  # re-raises the case's failure
    after = _snapshot(REPO / "benchmarks" / "results")
    assert after == results_before, "a tiny case wrote into benchmarks/results/"
