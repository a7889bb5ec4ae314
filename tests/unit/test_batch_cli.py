"""helpers.batch refuses what it cannot run as asked, before running anything (issue 29)."""

from __future__ import annotations

import pytest

from helpers.batch import BatchError, main, split_values


@pytest.mark.parametrize("text", ["[1,2", "(1,", "'abc", "{1: 2"])
def test_an_unclosed_literal_is_refused(text):
    with pytest.raises(BatchError, match="does not close"):
        split_values(text)


def test_plain_words_still_split_on_commas():
    assert split_values("local, mistral") == ["local", "mistral"]
    assert split_values("[8,16],[32]") == [[8, 16], [32]]


def test_the_cli_names_the_bad_grid_and_runs_nothing(tmp_path, capsys):
    code = main(["--out", str(tmp_path / "out"), "--grid", "alpha=[1,2"])
    assert code == 2 and "'[1,2': '[1' opens a list" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_workers_zero_is_refused_not_run_serially(tmp_path, capsys):
    code = main(["--out", str(tmp_path / "out"), "--workers", "0"])
    assert code == 2 and "--workers must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
