import json

import nbformat
import numpy as np
import pytest

from helpers.notebook import (
    ParameterError,
    check_parameters,
    notebook_parameters,
    parameter_defaults,
    parameter_names,
    read_results,
    record,
    resolve_work_dir,
    rounded,
)

PARAMS_CELL = (
    'data_source = "sample"  # hub id | "sample"\nmin_samples = 200\nwork_dir = "artifacts"'
)


def namespace(*cells, **values):
    ns = {"In": ["", *cells, "params = check_parameters(globals())"]}
    ns.update(values)
    return ns


def test_declared_parameters_are_returned_in_order():
    ns = namespace(PARAMS_CELL, data_source="sample", min_samples=200, work_dir="artifacts")
    assert check_parameters(ns) == {
        "data_source": "sample",
        "min_samples": 200,
        "work_dir": "artifacts",
    }


def test_injected_known_parameter_is_fine():
    ns = namespace(
        PARAMS_CELL,
        "# Parameters\nmin_samples = 50\n",
        data_source="sample",
        min_samples=50,
        work_dir="w",
    )
    assert check_parameters(ns)["min_samples"] == 50


def test_misspelt_parameter_stops_with_its_name():
    ns = namespace(PARAMS_CELL, "# Parameters\nmin_sample = 50\n")
    with pytest.raises(ParameterError, match=r"'min_sample' \(did you mean 'min_samples'\?\)"):
        check_parameters(ns)


def test_choices_are_enforced():
    ns = namespace("backend = 'local'", backend="cloud")
    with pytest.raises(ParameterError, match="backend='cloud' is not allowed; use one of 'local'"):
        check_parameters(ns, choices={"backend": ("local", "mistral")})


def test_magic_cells_are_ignored():
    ns = namespace("%pip install x", PARAMS_CELL, data_source="s", min_samples=1, work_dir="w")
    assert list(check_parameters(ns)) == ["data_source", "min_samples", "work_dir"]


def test_relative_work_dir_starts_at_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resolved = resolve_work_dir("some_dir_for_test")
    try:
        assert (resolved.parent / "pyproject.toml").exists()
    finally:
        resolved.rmdir()
    assert resolve_work_dir(tmp_path / "abs") == tmp_path / "abs"


def test_parameter_names_handles_annotations_repeats_and_magics():
    assert parameter_names("a = 1\nb: int = 2\na = 3\nx.y = 4\nc = d = 5") == ["a", "b", "c", "d"]
    assert parameter_names("%pip install x\na = 1") == []


def test_parameter_defaults_and_a_non_literal_named_by_line():
    assert parameter_defaults('a = 1  # one or two\nb = "x"') == {
        "a": (1, "# one or two"),
        "b": ("x", ""),
    }
    with pytest.raises(ValueError, match="line 2: b is not a plain literal"):
        parameter_defaults("a = 1\nb = len('x')")


def test_notebook_parameters_reads_the_tagged_cell(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("z = 0"),
        nbformat.v4.new_code_cell('work_dir = "w"  # a = b', metadata={"tags": ["parameters"]}),
    ]
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert notebook_parameters(tmp_path / "n.ipynb") == ["work_dir"]


def test_rounded_keeps_significant_digits_everywhere():
    value = {
        "acc": 0.84210526,
        "lr": 2e-05,
        "n": 3,
        "nested": [1 / 3, (2 / 3,)],
        "np": np.float32(0.123456),
        "nan": float("nan"),
        "s": "0.123456",
    }
    out = rounded(value)
    assert out["acc"] == 0.8421 and out["lr"] == 2e-05 and out["n"] == 3
    assert out["nested"] == [0.3333, [0.6667]] and out["np"] == 0.1235
    assert out["nan"] != out["nan"] and out["s"] == "0.123456"


def test_record_writes_and_prints_sorted_json_outside_ipython(tmp_path, capsys):
    record({"b": 1, "a": {"y": 0.5, "x": "é"}}, tmp_path / "sub" / "results.json")
    text = (tmp_path / "sub" / "results.json").read_text(encoding="utf-8")
    assert text == '{\n  "a": {\n    "x": "é",\n    "y": 0.5\n  },\n  "b": 1\n}\n'
    assert capsys.readouterr().out == text
    record({"no": "file"})
    assert json.loads(capsys.readouterr().out) == {"no": "file"}


def test_read_results_finds_the_named_output(tmp_path):
    nb = nbformat.v4.new_notebook()
    named = nbformat.v4.new_output(
        "display_data", data={"text/plain": '{"accuracy": 0.5}'}, metadata={"name": "results"}
    )
    other = nbformat.v4.new_output(
        "execute_result", data={"text/plain": "{'accuracy': 1}"}, execution_count=2
    )
    nb.cells = [
        nbformat.v4.new_code_cell("x", outputs=[named]),
        nbformat.v4.new_code_cell("y", outputs=[other]),
    ]
    assert read_results(nb) == {"accuracy": 0.5}
    nbformat.write(nb, tmp_path / "n.ipynb")
    assert read_results(tmp_path / "n.ipynb") == {"accuracy": 0.5}
    nb.cells = nb.cells[1:]
    assert read_results(nb) is None
