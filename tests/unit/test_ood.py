"""helpers.ood: scores, thresholds, Mahalanobis, temperature scaling, ECE, the pool."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import ood


def test_max_softmax_and_margin():
    p = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    np.testing.assert_allclose(ood.max_softmax(p), [0.7, 0.4])
    np.testing.assert_allclose(ood.margin(p), [0.5, 0.05])


def test_auroc_extremes_ties_and_errors():
    assert ood.auroc([2, 3, 4], [0, 1]) == 1.0
    assert ood.auroc([0, 1], [2, 3]) == 0.0
    assert ood.auroc([1, 1], [1, 1]) == 0.5
    # one OOS score above one of two in-scope scores: 3 of 4 pairs right
    assert ood.auroc([1, 3], [0, 2]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="at least one"):
        ood.auroc([], [1])


def test_threshold_for_recall_keeps_the_share_asked_for():
    s = np.arange(100, dtype=float)
    t = ood.threshold_for_recall(s, 0.95)
    assert t == 5.0 and (s >= t).mean() == 0.95
    assert ood.threshold_for_recall(np.arange(10.0), 0.95) == 0.0  # 9 of 10 would be < 95%
    assert ood.threshold_for_recall([3.0, 1.0], 1.0) == 1.0
    with pytest.raises(ValueError):
        ood.threshold_for_recall([1.0], 0)


def test_at_threshold_counts_rejections_as_errors():
    r = ood.at_threshold(
        0.5, in_scores=[0.9, 0.8, 0.4, 0.6], in_correct=[1, 0, 1, 1], oos_scores=[0.1, 0.7, 0.2]
    )
    assert r["in_scope_recall"] == 0.75
    assert r["in_scope_accuracy"] == 0.5  # 0.9 right, 0.8 wrong, 0.4 rejected, 0.6 right
    assert r["oos_recall"] == pytest.approx(2 / 3)


def test_evaluate_picks_the_threshold_on_validation():
    row = ood.evaluate(
        "x",
        valid_in=np.arange(20.0),
        valid_oos=[-1.0],
        test_in=[0.0, 5.0],
        test_oos=[0.5, -3.0],
        test_correct=[True, True],
    )
    assert row["threshold"] == 1.0  # keeps 19 of 20 validation scores
    assert row["in_scope_recall"] == 0.5 and row["oos_recall"] == 1.0
    assert row["valid_auroc"] == 1.0 and row["auroc"] == 0.75


def test_sweep_is_monotone():
    rng = np.random.default_rng(0)
    table = ood.sweep(rng.normal(1, 1, 200), rng.random(200) < 0.9, rng.normal(-1, 1, 100), n=50)
    assert len(table) == 50
    assert table["oos_recall"].is_monotonic_increasing
    assert table["in_scope_recall"].is_monotonic_decreasing


def test_mahalanobis_uses_the_shared_covariance():
    rng = np.random.default_rng(1)
    # two classes stretched along x: a point far along y is more unusual than one far along x
    cov = np.diag([4.0, 0.01])
    a = rng.multivariate_normal([0, 0], cov, 500)
    b = rng.multivariate_normal([0, 1], cov, 500)
    m = ood.Mahalanobis.fit(np.r_[a, b], ["a"] * 500 + ["b"] * 500)
    assert m.classes == ["a", "b"]
    np.testing.assert_allclose(m.means, [[0, 0], [0, 1]], atol=0.2)
    s_far_x, s_far_y = m.score(np.array([[4.0, 0.0], [0.0, -0.5]]))
    assert s_far_x > s_far_y
    assert m.nearest(np.array([[3.0, 0.95], [-2.0, 0.02]])) == ["b", "a"]
    d = m.distances(np.array([[1.0, 0.5]]))
    manual = [
        (np.array([1.0, 0.5]) - mu) @ m.precision @ (np.array([1.0, 0.5]) - mu) for mu in m.means
    ]
    np.testing.assert_allclose(d[0], manual)
    with pytest.raises(ValueError, match="one label per row"):
        ood.Mahalanobis.fit(np.zeros((3, 2)), ["a"])


def test_temperature_recovers_the_true_temperature_and_keeps_the_ranking():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (4000, 5))
    true_t = 2.5
    y = np.array([rng.choice(5, p=p) for p in ood.softmax(logits, true_t)])
    t = ood.fit_temperature(logits, y)
    assert t == pytest.approx(true_t, rel=0.1)
    assert (ood.softmax(logits, t).argmax(1) == logits.argmax(1)).all()
    # log-probabilities work as logits
    np.testing.assert_allclose(
        ood.softmax(ood.logits_from_probs(ood.softmax(logits)), 1.0), ood.softmax(logits), atol=1e-9
    )
    with pytest.raises(ValueError):
        ood.fit_temperature(logits, y[:3])


def test_ece_and_reliability():
    conf = np.array([0.95] * 10 + [0.55] * 10)
    correct = np.array([1] * 5 + [0] * 5 + [1] * 10, dtype=bool)
    table = ood.reliability(conf, correct, n_bins=10)
    assert table["count"].sum() == 20 and len(table) == 10
    row = table[table["count"] == 10].iloc[1]
    assert row["confidence"] == pytest.approx(0.95) and row["accuracy"] == 0.5
    # gaps 0.45 (overconfident) and 0.45 (underconfident), equal weights
    assert ood.expected_calibration_error(conf, correct) == pytest.approx(0.45)
    assert ood.expected_calibration_error([1.0, 1.0], [True, True]) == 0.0


def test_out_of_scope_pool_from_a_folder(tmp_path):
    rows = {
        "train": [
            ("kept_a", "hello there"),
            ("dropped_x", "book a train"),
            ("dropped_x", "Hello there "),
            ("dropped_y", "news please"),
        ],
        "validation": [("dropped_y", "news please"), ("dropped_y", "latest news")],
    }
    for split, items in rows.items():
        pd.DataFrame(
            [
                {"id": str(i), "label": 0, "label_text": y, "text": t, "lang": "en"}
                for i, (y, t) in enumerate(items)
            ]
        ).to_json(tmp_path / f"{split}.jsonl", orient="records", lines=True)
    pool = ood.out_of_scope_pool(str(tmp_path), "en", ["kept_a"], ["hello there"])
    assert pool["text"].tolist() == ["book a train", "latest news", "news please"]
    validation, test = ood.split_pool(pool, seed=0)
    assert len(validation) + len(test) == 3 and not set(validation.text) & set(test.text)


def test_sample_pool_is_the_dropped_intents():
    from helpers import data

    splits = data.load_splits("sample", "en")
    kept = splits.labels()
    pool = ood.out_of_scope_pool("sample", "en", kept, splits.train["text"])
    assert set(pool["label_text"]) == {
        "alarm_remove",
        "cooking_recipe",
        "news_query",
        "transport_ticket",
    }
    assert len(pool) > 400 and not set(pool["label_text"]) & set(kept)


def test_neg_entropy():
    p = np.array([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(ood.neg_entropy(p), [0.0, -np.log(3), -np.log(2)], atol=1e-9)


def test_nearest_neighbour_is_cosine_to_the_closest_training_rows():
    train = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # lengths do not matter
    nn = ood.NearestNeighbour.fit(train)
    x = np.array([[3.0, 0.0], [-1.0, 0.0], [1.0, 1.1]])
    np.testing.assert_allclose(
        nn.score(x), [1.0, 0.0, (1 + 1.1) / np.sqrt(2) / np.hypot(1, 1.1)], atol=1e-12
    )
    nn2 = ood.NearestNeighbour.fit(train, k=2)  # mean of the two most similar
    np.testing.assert_allclose(nn2.score([[3.0, 0.0]]), [(1 + 1 / np.sqrt(2)) / 2])
    # batching gives the same scores as one pass
    rng = np.random.default_rng(0)
    big, xs = rng.normal(size=(50, 4)), rng.normal(size=(30, 4))
    nn3 = ood.NearestNeighbour.fit(big, k=3)
    np.testing.assert_allclose(nn3.score(xs, batch=7), nn3.score(xs))
    with pytest.raises(ValueError, match="n >= k"):
        ood.NearestNeighbour.fit(train, k=4)


def test_combined_standardises_on_validation_and_picks_the_weight_on_validation():
    rng = np.random.default_rng(0)
    # score a separates well but on a tiny scale; b is noise on a huge scale
    a_in, a_oos = rng.normal(1e-3, 1e-4, 400), rng.normal(0.9e-3, 1e-4, 400)
    b_in, b_oos = rng.normal(0, 1e3, 400), rng.normal(0, 1e3, 400)
    c = ood.Combined.fit({"a": a_in, "b": b_in}, {"a": 1.0, "b": 0.0})
    z = c.score({"a": a_in, "b": b_in})
    assert abs(z.mean()) < 1e-9 and z.std() == pytest.approx(1.0)
    best = ood.Combined.fit_best({"a": a_in, "b": b_in}, {"a": a_oos, "b": b_oos})
    assert best.weights == {"a": 0.7, "b": pytest.approx(0.3)}  # the grid's most on a
    flipped = ood.Combined.fit_best({"b": b_in, "a": a_in}, {"b": b_oos, "a": a_oos})
    assert flipped.weights["b"] == 0.3
    with pytest.raises(ValueError, match="differ"):
        ood.Combined.fit({"a": a_in}, {"b": 1.0})


def test_auroc_difference_is_paired_and_its_interval_covers_the_point():
    rng = np.random.default_rng(1)
    in_s, oos_s = rng.normal(1.0, 1.0, 200), rng.normal(0.0, 1.0, 150)
    better = (np.r_[in_s, oos_s] + np.r_[np.full(200, 1.0), np.zeros(150)]).astype(float)
    d = ood.auroc_difference(better[:200], better[200:], in_s, oos_s, n_resamples=300)
    assert d["difference"] > 0 and d["low"] <= d["difference"] <= d["high"]
    assert d["low"] > 0 and d["p_value"] < 0.05
    same = ood.auroc_difference(in_s, oos_s, in_s, oos_s, n_resamples=50)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="same utterances"):
        ood.auroc_difference(in_s, oos_s, in_s[:10], oos_s)


def test_expected_cost_counts_each_mistake_once():
    # 10 in-scope kept of 12 (8 right), 3 of 4 out-of-scope rejected
    row = {"in_scope_recall": 10 / 12, "in_scope_accuracy": 8 / 12, "oos_recall": 0.75}
    cost = ood.expected_cost(row, cost_false_reject=1, cost_false_accept=4, oos_share=0.2)
    assert cost == pytest.approx(0.8 * (2 / 12 + 4 * 2 / 12) + 0.2 * 4 * 0.25)
    assert ood.expected_cost(row, 0, 0, 0.5) == 0
    for bad in ({"cost_false_reject": -1}, {"oos_share": 1.0}, {"oos_share": -0.1}):
        args = {"cost_false_reject": 1, "cost_false_accept": 1, "oos_share": 0.1} | bad
        with pytest.raises(ValueError):
            ood.expected_cost(row, **args)


def test_threshold_by_cost_weighs_a_false_reject_against_a_false_accept():
    in_scores = np.array([0.9, 0.8, 0.7, 0.6, 0.3])
    in_correct = np.array([True, True, True, True, False])
    oos_scores = np.array([0.5, 0.4, 0.65])
    # acting on a wrong intent is expensive: reject up to above the highest out-of-scope score
    strict = ood.threshold_by_cost(in_scores, in_correct, oos_scores, 1, 10, 0.5)
    assert strict["threshold"] == 0.7 and strict["oos_recall"] == 1.0
    assert strict["in_scope_recall"] == 0.6 == strict["in_scope_accuracy"]
    assert strict["cost"] == pytest.approx(0.5 * 1 * 0.4)
    # a false reject costs more: keep the right answers at 0.6 and let one out-of-scope through
    middle = ood.threshold_by_cost(in_scores, in_correct, oos_scores, 10, 4, 0.5)
    assert middle["threshold"] == 0.6 and middle["oos_recall"] == pytest.approx(2 / 3)
    assert middle["cost"] == pytest.approx(0.5 * 10 * 0.2 + 0.5 * 4 / 3)
    # rejecting is expensive and out-of-scope traffic rare: keep everything
    lax = ood.threshold_by_cost(in_scores, in_correct, oos_scores, 10, 1, 0.01)
    assert lax["threshold"] == -np.inf and lax["in_scope_recall"] == 1.0
    assert lax["cost"] == pytest.approx(0.99 * 1 * 0.2 + 0.01 * 1)
    # no candidate beats the chosen one
    for t in np.r_[in_scores, oos_scores]:
        row = ood.at_threshold(t, in_scores, in_correct, oos_scores)
        assert ood.expected_cost(row, 1, 10, 0.5) >= strict["cost"] - 1e-12
        assert ood.expected_cost(row, 10, 4, 0.5) >= middle["cost"] - 1e-12


def test_cost_difference_is_paired_and_matches_the_expected_costs():
    rng = np.random.default_rng(3)
    in_correct = rng.random(300) < 0.9
    a = {"in": rng.normal(1, 1, 300), "oos": rng.normal(-1, 1, 200), "threshold": 0.0}
    b = {"in": a["in"] + rng.normal(0, 0.3, 300), "oos": a["oos"] + 0.5, "threshold": 0.2}
    costs = {"cost_false_reject": 1.0, "cost_false_accept": 3.0, "oos_share": 0.2}
    d = ood.cost_difference(a, b, in_correct, **costs)

    def cost(m):
        row = ood.at_threshold(m["threshold"], m["in"], in_correct, m["oos"])
        return ood.expected_cost(row, **costs)

    assert d["difference"] == pytest.approx(cost(a) - cost(b))
    assert d["low"] <= d["difference"] <= d["high"]
    same = ood.cost_difference(a, a, in_correct, **costs)
    assert same == {"difference": 0.0, "low": 0.0, "high": 0.0}
