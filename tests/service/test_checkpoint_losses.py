"""A checkpoint's train_loss is the mean of the steps' losses since the previous checkpoint
(issue 26: one batch's loss, as before, was too noisy to read), written to the real store."""

from __future__ import annotations

import pytest

from helpers.factory.store import Store
from helpers.factory.trainers.base import StepReport
from helpers.factory.worker import _Progress


def running_job(store: Store) -> str:
    job = store.create_job(
        {
            "model": "tfidf-logreg",
            "auto_start": 1,
            "training_files": ["train"],
            "hyperparameters": {"training_steps": 6},
            "metadata": {},
        }
    )
    for before, after in (("QUEUED", "VALIDATING"), ("VALIDATING", "VALIDATED")):
        store.transition(job.id, [before], after)
    store.transition(job.id, ["VALIDATED"], "QUEUED", started=1)
    store.transition(job.id, ["QUEUED"], "RUNNING")
    return job.id


@pytest.mark.parametrize("has_validation", [True, False])
def test_checkpoint_train_loss_is_the_mean_since_the_last_checkpoint(tmp_path, has_validation):
    store = Store(tmp_path / "factory")
    job_id = running_job(store)
    progress = _Progress(store, job_id, run=None, has_validation=has_validation)
    losses = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.5]
    for step, loss in enumerate(losses, 1):
        # validation every third step; without validation the worker checkpoints each step of 7
        valid = 0.1 * step if has_validation and step % 3 == 0 else None
        progress(StepReport(step=step, total_steps=len(losses), train_loss=loss, valid_loss=valid))
    progress.finish()  # the last step, 7, has no validation: finish records it
    got = {c.step_number: c.metrics["train_loss"] for c in store.checkpoints(job_id)}
    if has_validation:
        assert got == {3: 5.0, 6: 2.0, 7: 0.5}  # (6+5+4)/3, (3+2+1)/3, 0.5
    else:
        assert got == dict(enumerate(losses, 1))  # one step per checkpoint: the step's own loss
