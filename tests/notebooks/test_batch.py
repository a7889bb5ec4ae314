"""helpers.batch on tiny throwaway notebooks (about 10 papermill executions in all)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from notebook_files import write_notebook

from helpers.batch import (
    RESULTS,
    BatchError,
    declared_parameters,
    main,
    parse_value,
    run_batch,
    run_name,
    select_notebooks,
    split_values,
)

# 01 counts its executions and fails when alpha == 3; 02 ends with record(), like a lesson.
NOTEBOOK_A = (
    'alpha = 1\nlabel = "none"\nwork_dir = "x"',
    "import json, os, pathlib\n"
    "work = pathlib.Path(work_dir)\n"
    "count = work / 'count_a.txt'\n"
    "count.write_text(str(int(count.read_text()) + 1 if count.exists() else 1))\n"
    "seen = {'alpha': alpha, 'label': label, 'work_dir': work_dir, 'cwd': os.getcwd()}\n"
    "(work / 'seen_a.json').write_text(json.dumps(seen))\n"
    "if alpha == 3:\n"
    "    raise ValueError('alpha must not be 3')",
)
NOTEBOOK_B = (
    'alpha = 1\nbeta = 0.5\nwork_dir = "x"  # "" = no folder (two "=" confuse papermill)',
    "import pathlib\n"
    "from helpers.notebook import record\n"
    "results = {'accuracy': alpha / 10 + beta, 'macro_f1': alpha / 20, 'model': 'm',\n"
    "           'train_seconds': 1.5}\n"
    "record(results, pathlib.Path(work_dir) / 'metrics.json')",
)

pytestmark = pytest.mark.slow  # real training or kernels: `make test`, not test-fast


@pytest.fixture(scope="module")
def notebooks(module_tmp) -> list[Path]:
    folder = module_tmp("nbs")
    return [
        write_notebook(folder / "01_a.ipynb", *NOTEBOOK_A),
        write_notebook(folder / "02_b.ipynb", *NOTEBOOK_B),
    ]


@pytest.fixture(scope="module")
def batch(notebooks, module_tmp):
    """A 2 x 2 grid run with the API, then rerun with the same command through the CLI."""
    out = module_tmp("batch") / "out"
    first = run_batch(
        out,
        grid={"alpha": [1, 3], "beta": [0.5, 1.0]},
        fixed={"label": "hi"},
        notebooks=notebooks,
        progress=False,
    )
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/*") if p.is_file()}
    code = main(
        [
            "--out",
            str(out),
            "--grid",
            "alpha=1,3",
            "--grid",
            "beta=0.5,1.0",
            "--set",
            "label=hi",
            "--notebooks",
            ",".join(map(str, notebooks)),
        ]
    )
    return {
        "out": out,
        "first": first,
        "mtimes": mtimes,
        "code": code,
        "summary": pd.read_csv(out / "summary.csv"),
    }


def test_literal_parsing():
    assert parse_value("1e-4") == 0.0001 and parse_value("20") == 20
    assert parse_value("False") is False and parse_value("None") is None
    assert parse_value("local") == "local" and parse_value("'a b'") == "a b"
    assert parse_value("") == "" and parse_value("[1, 2]") == [1, 2]
    assert split_values("1e-4,2e-4") == [0.0001, 0.0002]
    assert split_values("[1,2],[3]") == [[1, 2], [3]]
    assert split_values("'a,b','c'") == ["a,b", "c"]
    assert split_values("local, mistral") == ["local", "mistral"]
    assert split_values("en") == ["en"] and split_values("3,x") == [3, "x"]


def test_run_names_are_readable_and_safe():
    assert run_name({}) == "default"
    assert run_name({"learning_rate": 0.0001, "training_steps": 20}) == (
        "learning_rate-0.0001__training_steps-20"
    )
    odd = run_name({"data_source": "/tmp/my data"})
    assert odd.startswith("data_source-_tmp_my_data_") and "/" not in odd
    assert odd != run_name({"data_source": "/tmp/my_data"})


def test_notebook_selection(notebooks):
    assert [p.name for p in select_notebooks("03,01")] == [
        "03_train_classifier.ipynb",
        "01_explore_data.ipynb",
    ]
    assert [p.name for p in select_notebooks()][:2] == [
        "01_explore_data.ipynb",
        "02_format_data.ipynb",
    ]
    assert select_notebooks(str(notebooks[0].parent / "0*.ipynb")) == notebooks
    with pytest.raises(BatchError, match="no notebook matches '99'"):
        select_notebooks(["99"])


def test_declared_parameters_survive_an_equals_sign_in_a_comment(notebooks):
    assert declared_parameters(notebooks[0]) == ["alpha", "label", "work_dir"]
    assert declared_parameters(notebooks[1]) == ["alpha", "beta", "work_dir"]


@pytest.mark.parametrize(
    "grid, fixed, message",
    [
        ({"gamma": [1]}, {}, "unknown parameter 'gamma'"),
        ({}, {"bta": 1}, r"unknown parameter 'bta' \(did you mean 'beta'\?\)"),
        ({}, {"work_dir": "elsewhere"}, "'work_dir' is set by the runner"),
        ({"alpha": [1]}, {"alpha": 2}, "both swept and fixed"),
    ],
)
def test_bad_names_are_refused_before_anything_runs(notebooks, tmp_path, grid, fixed, message):
    with pytest.raises(BatchError, match=message) as info:
        run_batch(tmp_path / "out", grid, fixed, notebooks=notebooks, progress=False)
    assert not (tmp_path / "out").exists()
    if "unknown" in message:
        assert "01_a.ipynb: alpha, label, work_dir" in str(info.value)


def test_cli_refusal_exits_2(notebooks, tmp_path, capsys):
    args = ["--out", str(tmp_path / "out"), "--notebooks", ",".join(map(str, notebooks))]
    assert main([*args, "--grid", "gamma=1,2"]) == 2
    assert main([*args, "--set", "work_dir=x"]) == 2
    assert "02_b.ipynb: alpha, beta, work_dir" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cartesian_product_with_fixed_values(batch):
    first = batch["first"]
    assert list(first["run"]) == [
        "alpha-1__beta-0.5",
        "alpha-1__beta-1.0",
        "alpha-3__beta-0.5",
        "alpha-3__beta-1.0",
    ]
    assert list(zip(first["alpha"], first["beta"], strict=True)) == [
        (1, 0.5),
        (1, 1.0),
        (3, 0.5),
        (3, 1.0),
    ]
    assert set(first["label"]) == {"hi"}


def test_each_name_goes_only_to_notebooks_declaring_it(batch, notebooks):
    folder = batch["out"] / "alpha-1__beta-1.0"
    seen = json.loads((folder / "seen_a.json").read_text())
    assert seen == {
        "alpha": 1,
        "label": "hi",
        "work_dir": str(folder),
        "cwd": str(notebooks[0].parent),
    }
    injected = {}
    for name in ("01_a.ipynb", "02_b.ipynb"):
        cells = nbformat.read(folder / name, as_version=4).cells
        injected[name] = next(
            c.source for c in cells if "injected-parameters" in c.metadata.get("tags", [])
        )
    assert 'label = "hi"' in injected["01_a.ipynb"] and "beta =" not in injected["01_a.ipynb"]
    assert "beta = 1.0" in injected["02_b.ipynb"] and "label =" not in injected["02_b.ipynb"]


def test_failing_points_are_recorded_and_others_finish(batch):
    first = batch["first"].set_index("run")
    assert list(first["status"]) == ["ok", "ok", "failed", "failed"]
    failed = first.loc["alpha-3__beta-0.5"]
    assert failed["failed_notebook"] == "01_a.ipynb"
    assert failed["error"] == "ValueError: alpha must not be 3"
    assert pd.isna(failed["accuracy"])
    assert first.loc["alpha-1__beta-1.0", "accuracy"] == pytest.approx(1.1)
    status = json.loads((batch["out"] / "alpha-3__beta-0.5" / "status.json").read_text())
    assert status["status"] == "failed" and status["parameters"]["alpha"] == 3
    assert batch["code"] == 1


def test_rerun_skips_finished_points_and_reruns_failed_ones(batch):
    out, mtimes = batch["out"], batch["mtimes"]
    for run, count in [
        ("alpha-1__beta-0.5", "1"),
        ("alpha-1__beta-1.0", "1"),
        ("alpha-3__beta-0.5", "2"),
        ("alpha-3__beta-1.0", "2"),
    ]:
        assert (out / run / "count_a.txt").read_text() == count
    kept = out / "alpha-1__beta-0.5" / "02_b.ipynb"
    assert kept.stat().st_mtime_ns == mtimes[kept]


def test_summary_files_cover_all_points(batch):
    summary, out = batch["summary"], batch["out"]
    # the run, the parameters in the order the notebooks declare them, then the results
    assert list(summary.columns) == ["run", "alpha", "beta", "label", *RESULTS]
    assert RESULTS[:3] == ["status", "accuracy", "macro_f1"] and RESULTS[-1] == "worker"
    assert len(summary) == 4
    ok = summary[summary["status"] == "ok"]  # both finished in the first invocation
    assert list(ok["accuracy"]) == pytest.approx([0.6, 1.1])
    assert list(ok["macro_f1"]) == pytest.approx([0.05, 0.05])
    assert list(ok["train_seconds"]) == [1.5, 1.5] and (ok["wall_seconds"] > 0).all()
    markdown = (out / "summary.md").read_text()
    assert "![" in markdown and "(summary.png)" in markdown and "| alpha-1__beta-0.5 |" in markdown
    assert (out / "summary.png").stat().st_size > 0


def test_cli_end_to_end(notebooks, tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.batch",
            "--out",
            str(out),
            "--grid",
            "alpha=2",
            "--set",
            "beta=2.0",
            "--notebooks",
            ",".join(map(str, notebooks)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "alpha-2: ok" in result.stderr + result.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["run"]) == ["alpha-2"] and summary["accuracy"][0] == pytest.approx(2.2)
    assert (out / "alpha-2" / "status.json").exists()
