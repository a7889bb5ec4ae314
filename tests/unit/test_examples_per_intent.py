"""The shared parameter ``examples_per_intent``: range checks, deterministic nested subsampling."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers import batch, data


@pytest.fixture(scope="module")
def train_df() -> pd.DataFrame:
    return data.load_splits(data.SAMPLE).train


@pytest.mark.parametrize("value", [-1, -8, 2.5, 8.0, "8", True, [8]])
def test_out_of_range_values_are_refused(value):
    with pytest.raises(ValueError, match=r"examples_per_intent=.*(whole number|positive)"):
        data.check_examples_per_intent(value)


@pytest.mark.parametrize("value,expected", [(0, 0), (None, 0), (8, 8), (1000, 1000)])
def test_allowed_values(value, expected):
    assert data.check_examples_per_intent(value) == expected


def test_subsample_keeps_n_per_intent_deterministically(train_df):
    small = data.subsample_per_intent(train_df, 8, seed=1)
    assert (small["label_text"].value_counts() == 8).all()
    assert set(small["label_text"]) == set(train_df["label_text"])
    assert small.equals(data.subsample_per_intent(train_df, 8, seed=1))
    assert not small.index.equals(data.subsample_per_intent(train_df, 8, seed=2).index)
    # rows keep their original order
    assert list(small.index) == [i for i in train_df.index if i in set(small.index)]


def test_subsample_is_nested_and_zero_means_all(train_df):
    sizes = [8, 16, 32]
    subsets = [set(data.subsample_per_intent(train_df, n, seed=3).index) for n in sizes]
    assert subsets[0] < subsets[1] < subsets[2]
    assert data.subsample_per_intent(train_df, 0, seed=3) is train_df
    assert data.subsample_per_intent(train_df, None, seed=3) is train_df
    huge = data.subsample_per_intent(train_df, 10**6, seed=3)
    assert len(huge) == len(train_df)
    with pytest.raises(ValueError, match="examples_per_intent=-2"):
        data.subsample_per_intent(train_df, -2)


def test_batch_refuses_out_of_range_values_before_running(tmp_path, capsys):
    code = batch.main(
        [
            "--out",
            str(tmp_path / "sweep"),
            "--notebooks",
            "02",
            "--grid",
            "examples_per_intent=8,-1",
        ]
    )
    assert code == 2
    assert "examples_per_intent=-1" in capsys.readouterr().err
    assert not (tmp_path / "sweep").exists()
    code = batch.main(
        [
            "--out",
            str(tmp_path / "sweep"),
            "--notebooks",
            "02",
            "--set",
            "examples_per_intent=eight",
        ]
    )
    assert code == 2
    assert "examples_per_intent='eight'" in capsys.readouterr().err


def test_lesson_2_declares_the_parameter():
    path = batch.select_notebooks("02")[0]
    assert {"examples_per_intent", "seed"} <= set(batch.declared_parameters(path))
