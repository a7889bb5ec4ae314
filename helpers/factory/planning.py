"""Step and epoch arithmetic, in one place: pure functions of a job's numbers.

A *step* is one optimizer update on ``batch_size`` examples (``batch_size`` 0 means the full
batch: every step sees every example); an *epoch* is one pass over the training examples, so
``epochs = steps * batch_size / n_train``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


class TooManySteps(ValueError):
    """The requested epochs need more steps than the service allows."""


@dataclass(frozen=True)
class StepPlan:
    training_steps: int
    epochs: float  # what those steps amount to, rounded to 4 decimals
    tokens_per_step: int  # whitespace-separated words, as the job's ``trained_tokens`` counts


def examples_per_step(batch_size: int, n_train: int) -> int:
    """``batch_size``, or ``n_train`` for a full-batch trainer (``batch_size`` 0)."""
    return batch_size or n_train


def steps_for_epochs(epochs: float, n_train: int, batch_size: int) -> int:
    """The steps that make ``epochs`` passes (at least one)."""
    return max(1, math.ceil(epochs * n_train / examples_per_step(batch_size, n_train)))


def epochs_for_steps(steps: int, n_train: int, batch_size: int) -> float:
    return round(steps * examples_per_step(batch_size, n_train) / n_train, 4)


def tokens_per_step(data_tokens: int, n_train: int, batch_size: int) -> int:
    """Words one step sees on average (at least 1)."""
    return max(1, round(data_tokens / n_train * examples_per_step(batch_size, n_train)))


def plan_steps(
    n_train: int,
    batch_size: int,
    data_tokens: int,
    training_steps: int | None,
    epochs: float | None,
    max_steps: int,
) -> StepPlan:
    """The job's steps: ``training_steps`` when given, else from ``epochs`` (default 1).

    Raises :class:`TooManySteps` when epochs would need more than ``max_steps``
    (``training_steps`` itself is checked against the limit when the job is created).
    """
    if n_train < 1:
        raise ValueError("no training examples")
    if training_steps is None:
        training_steps = steps_for_epochs(epochs or 1.0, n_train, batch_size)
        if training_steps > max_steps:
            raise TooManySteps(
                f"epochs={epochs} means {training_steps} training steps on {n_train} examples; "
                f"this service runs at most {max_steps} (serve --max-training-steps)"
            )
    return StepPlan(
        training_steps=training_steps,
        epochs=epochs_for_steps(training_steps, n_train, batch_size),
        tokens_per_step=tokens_per_step(data_tokens, n_train, batch_size),
    )


def every(total_steps: int, fraction: float) -> int:
    """A cadence of about ``fraction`` of the steps (evaluations, checkpoints); at least 1."""
    return max(1, int(round(total_steps * fraction)))


def interval_mean(losses: Sequence[float]) -> float:
    """A checkpoint's ``train_loss``: the mean training loss of the steps since the previous
    checkpoint (NaN when there were none)."""
    return math.fsum(losses) / len(losses) if losses else float("nan")


def is_evaluation_step(step: int, total_steps: int, cadence: int) -> bool:
    """Every ``cadence`` steps, and always the last one (``step`` counts from 1)."""
    return step % cadence == 0 or step == total_steps


def warmup_steps(total_steps: int, fraction: float) -> int:
    return int(round(max(0.0, fraction) * total_steps))


def lr_factor(step_index: int, total_steps: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total_steps``
    (``step_index`` is the 0-based index of the step about to be taken)."""
    if step_index < warmup:
        return (step_index + 1) / warmup
    return max(0.0, (total_steps - step_index) / max(1, total_steps - warmup))
