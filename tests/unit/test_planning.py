"""Step and epoch arithmetic (helpers.factory.planning): pure functions, checked by hand."""

from __future__ import annotations

import math

import pytest

from helpers.factory import planning


def test_epochs_to_steps_round_up_and_back():
    assert planning.steps_for_epochs(1.0, n_train=100, batch_size=32) == 4  # 3.125 -> 4
    assert planning.epochs_for_steps(4, n_train=100, batch_size=32) == 1.28
    assert planning.steps_for_epochs(0.001, n_train=100, batch_size=32) == 1  # never 0


def test_full_batch_trainers_make_one_step_one_epoch():
    assert planning.steps_for_epochs(3.0, n_train=5000, batch_size=0) == 3
    assert planning.epochs_for_steps(40, n_train=5000, batch_size=0) == 40.0
    assert planning.tokens_per_step(50_000, n_train=5000, batch_size=0) == 50_000


def test_plan_keeps_given_steps_and_derives_epochs_and_tokens():
    plan = planning.plan_steps(
        n_train=5313,
        batch_size=32,
        data_tokens=37191,
        training_steps=450,
        epochs=None,
        max_steps=10_000,
    )
    assert plan == planning.StepPlan(training_steps=450, epochs=2.7103, tokens_per_step=224)


def test_plan_from_epochs_defaults_to_one_pass():
    plan = planning.plan_steps(100, 32, 700, training_steps=None, epochs=None, max_steps=50)
    assert plan.training_steps == 4 and plan.epochs == 1.28
    assert planning.plan_steps(100, 32, 700, None, 2.5, 50).training_steps == 8


def test_plan_refuses_epochs_beyond_the_step_limit_with_the_numbers():
    with pytest.raises(planning.TooManySteps, match=r"epochs=100 means 313 training steps on 100"):
        planning.plan_steps(100, 32, 700, training_steps=None, epochs=100, max_steps=300)


def test_plan_needs_examples():
    with pytest.raises(ValueError, match="no training examples"):
        planning.plan_steps(0, 32, 0, training_steps=10, epochs=None, max_steps=300)


def test_cadence_and_evaluation_steps():
    assert planning.every(450, 0.1) == 45 and planning.every(4, 0.1) == 1
    evaluated = [s for s in range(1, 451) if planning.is_evaluation_step(s, 450, 45)]
    assert evaluated == list(range(45, 451, 45))
    assert [s for s in range(1, 13) if planning.is_evaluation_step(s, 12, 5)] == [5, 10, 12]


def test_warmup_then_linear_decay_to_zero():
    total, warm = 10, planning.warmup_steps(10, 0.2)
    assert warm == 2 and planning.warmup_steps(10, -1.0) == 0
    factors = [planning.lr_factor(s, total, warm) for s in range(total)]
    assert factors[:2] == [0.5, 1.0]  # warm-up reaches the full rate
    assert factors[2] == 1.0 and factors[-1] == pytest.approx(1 / 8)
    assert all(a > b for a, b in zip(factors[2:], factors[3:], strict=False))  # decays
    assert planning.lr_factor(total, total, warm) == 0.0
    assert [planning.lr_factor(s, 3, 0) for s in range(3)] == [1.0, 2 / 3, 1 / 3]


def test_interval_mean_is_the_checkpoint_training_loss():
    assert planning.interval_mean([4.0, 3.0, 2.0, 1.0]) == 2.5
    assert planning.interval_mean([0.1]) == 0.1
    assert math.isnan(planning.interval_mean([]))
