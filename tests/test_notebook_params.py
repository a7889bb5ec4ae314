import pytest

from helpers.notebook import ParameterError, check_parameters, resolve_work_dir

PARAMS_CELL = (
    'data_source = "sample"  # hub id | "sample"\nmin_samples = 200\nwork_dir = "artifacts"'
)


def namespace(*cells, **values):
    ns = {"In": ["", *cells, "params = check_parameters(globals())"]}
    ns.update(values)
    return ns


def test_declared_parameters_are_returned_in_order():
    ns = namespace(PARAMS_CELL, data_source="sample", min_samples=200, work_dir="artifacts")
    assert check_parameters(ns) == {"data_source": "sample", "min_samples": 200,
                                    "work_dir": "artifacts"}


def test_injected_known_parameter_is_fine():
    ns = namespace(PARAMS_CELL, "# Parameters\nmin_samples = 50\n", data_source="sample",
                   min_samples=50, work_dir="w")
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
