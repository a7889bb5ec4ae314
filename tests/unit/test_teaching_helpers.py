"""Statistics, near-duplicate and plot helpers used by the lessons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import data, evaluation, plots


def frame(correct: list[bool]) -> pd.DataFrame:
    true = ["a", "b"] * (len(correct) // 2)
    flip = {"a": "b", "b": "a"}
    predicted = [t if ok else flip[t] for t, ok in zip(true, correct, strict=True)]
    return pd.DataFrame(
        {
            "true": true,
            "predicted": predicted,
            "correct": correct,
            "confidence": np.linspace(0.3, 1.0, len(correct)),
        }
    )


def test_mcnemar_exact_matches_the_binomial_tail():
    assert evaluation.mcnemar_exact(0, 0) == 1.0
    assert evaluation.mcnemar_exact(5, 5) == 1.0
    # 0 vs 6: two-sided p = 2 * (1/2)**6
    assert evaluation.mcnemar_exact(6, 0) == pytest.approx(2 / 64)
    assert evaluation.mcnemar_exact(3, 6) == evaluation.mcnemar_exact(6, 3)
    assert evaluation.mcnemar_exact(3, 6) == pytest.approx(2 * (1 + 9 + 36 + 84) / 512)


def test_paired_comparison_counts_disagreements_and_brackets_the_difference():
    a = [True] * 90 + [False] * 10
    b = [True] * 80 + [False] * 20
    result = evaluation.paired_comparison(a, b, seed=1)
    assert (result["only_a"], result["only_b"], result["n"]) == (10, 0, 100)
    assert result["difference"] == pytest.approx(0.10)
    assert result["low"] <= 0.10 <= result["high"] and result["low"] > 0
    assert result["mcnemar_p"] < 0.01
    with pytest.raises(ValueError, match="equal"):
        evaluation.paired_comparison([True], [True, False])


def test_bootstrap_interval_contains_the_value_and_narrows_with_more_data():
    small = evaluation.bootstrap_interval(frame([True, True, False, True] * 10), "accuracy")
    large = evaluation.bootstrap_interval(frame([True, True, False, True] * 250), "accuracy")
    for ci in (small, large):
        assert ci["value"] == pytest.approx(0.75)
        assert ci["low"] <= ci["value"] <= ci["high"]
    assert large["high"] - large["low"] < small["high"] - small["low"]
    f1 = evaluation.bootstrap_interval(frame([True, False] * 20), "macro_f1", n_resamples=200)
    assert f1["low"] <= f1["value"] <= f1["high"]
    with pytest.raises(ValueError, match="metric"):
        evaluation.bootstrap_interval(frame([True, False]), "recall")


def test_apply_threshold_reports_coverage_and_accuracy_of_the_routed():
    df = frame([False, False, True, True])  # confidence rises 0.3 -> 1.0
    out = evaluation.apply_threshold(df, 0.7)
    assert out["routed"] == 2 and out["coverage"] == 0.5 and out["accuracy"] == 1.0
    assert evaluation.apply_threshold(df, None)["routed"] == 0


def test_near_duplicates_find_copies_that_differ_by_case_and_punctuation():
    train = pd.DataFrame(
        {
            "text": ["Wake me up at seven", "play some jazz", "what's the weather"],
            "label_text": ["alarm_set", "play_music", "weather_query"],
        }
    )
    test = pd.DataFrame(
        {
            "text": ["wake me up at seven!", "order a pizza"],
            "label_text": ["alarm_set", "takeaway_order"],
        }
    )
    splits = data.Splits(train=train, validation=test.iloc[:0], test=test, source="unit test")
    near = data.near_duplicates(splits, check=("test",))
    assert near.loc[0, "equal_after_normalising"] and near.loc[0, "similarity"] == pytest.approx(1)
    assert near.loc[0, "nearest_train_text"] == "Wake me up at seven"
    assert near.loc[0, "jaccard"] == 1.0
    assert not near.loc[1, "equal_after_normalising"] and near.loc[1, "similarity"] < 0.5
    assert data.normalise_text("  What's   UP?! ") == "what s up"


def test_plots_have_titles_and_axis_labels():
    ckpts = [
        {"step_number": s, "metrics": {"train_loss": 1 / s, "valid_loss": 2 / s}}
        for s in (30, 20, 10)
    ]
    figs = [
        plots.loss_curves(ckpts, start=(0, 0.5)),
        plots.confidence_histogram([0.2, 0.9, 0.95], [False, True, True], mark=0.5),
        plots.threshold_curve(
            evaluation.threshold_table(frame([False, True] * 5)),
            0.9,
            chosen={"threshold": 0.5, "accuracy": 0.9, "coverage": 0.6},
        ),
        plots.label_distribution(
            {
                "train": pd.DataFrame({"label_text": ["a", "b", "b"]}),
                "test": pd.DataFrame({"label_text": ["a", "b"]}),
            }
        ),
        plots.length_distribution({"train": pd.DataFrame({"text": ["a b", "a b c"]})}, mark=2),
        plots.metric_bars({"x": 0.5}, "title"),
    ]
    for fig in figs:
        ax = fig.axes[0]
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert "log" in figs[1].axes[0].get_ylabel()
    assert len(figs[3].axes) == 1  # one panel for all splits


def test_fast_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    true = rng.choice(list("abcde"), 200)
    predicted = np.where(rng.random(200) < 0.7, true, rng.choice(list("abcdf"), 200))
    df = pd.DataFrame({"true": true, "predicted": predicted, "correct": true == predicted})
    ci = evaluation.bootstrap_interval(df, "macro_f1", n_resamples=50)
    assert ci["value"] == pytest.approx(f1_score(true, predicted, average="macro", zero_division=0))


def test_most_confident_errors_and_confidence_summary():
    df = pd.DataFrame(
        {
            "text": ["a", "b", "c", "d", "e"],
            "true": ["x", "x", "y", "y", "y"],
            "predicted": ["y", "x", "x", "y", "x"],
            "confidence": [0.99, 0.97, 0.6, 0.8, 0.96],
        }
    )
    df["correct"] = df["true"] == df["predicted"]
    top = evaluation.most_confident_errors(df, top=2)
    assert top["text"].tolist() == ["a", "e"] and top.columns.tolist()[:3] == [
        "text",
        "true",
        "predicted",
    ]
    summary = evaluation.confidence_summary(df, sure=0.95)
    assert summary == {
        "median_right": pytest.approx(0.885),
        "median_wrong": pytest.approx(0.96),
        "errors": 3,
        "sure_errors": 2,
        "sure": 0.95,
    }


def test_confusion_matrix_can_hide_the_diagonal_and_the_threshold_plot_zooms():
    matrix = np.array([[40, 2], [1, 50]])
    fig = plots.confusion_matrix(matrix, ["a", "b"], hide_diagonal=True)
    image = fig.axes[0].images[0]
    assert image.get_clim() == (0.0, 2.0)  # the mistakes get the whole colour scale
    assert bool(np.ma.getmaskarray(image.get_array())[0, 0])  # the diagonal is not coloured
    assert "Mistakes only" in fig.axes[0].get_title()
    confident = pd.DataFrame(
        {"confidence": np.r_[np.full(90, 0.99), np.linspace(0.9, 0.98, 10)], "true": "a"}
    )
    confident["predicted"] = ["a"] * 95 + ["b"] * 5
    confident["correct"] = confident["true"] == confident["predicted"]
    table = evaluation.threshold_table(confident)
    ax = plots.threshold_curve(table, 0.99).axes[0]
    left, right = ax.get_xlim()
    assert 0.8 <= left < 0.9 and right == 1.0  # where coverage falls, not from 0
    assert ax.get_ylim()[0] > 0.5
    assert plots.threshold_curve(table, 0.99, zoom=False).axes[0].get_ylim()[0] == 0
