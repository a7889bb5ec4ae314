"""``training.resolve_auto`` (the lessons' True | False | "auto" switches) and the schedule of
``training.wait_for_job``'s polls."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from helpers import training


@pytest.mark.parametrize("gpu", [True, False])
def test_auto_follows_the_gpu_and_booleans_stay(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert training.resolve_auto("train_extras", "auto") is gpu
    assert training.resolve_auto("train_extras", True) is True
    assert training.resolve_auto("train_extras", False) is False


@pytest.mark.parametrize("value", ["yes", 1, None, "Auto"])
def test_anything_else_names_the_parameter(value):
    with pytest.raises(ValueError, match=r"train_extras=.*True, False or \"auto\""):
        training.resolve_auto("train_extras", value)


class Jobs:
    """``client.fine_tuning.jobs`` answering RUNNING ``running`` times, then SUCCESS."""

    def __init__(self, running: int) -> None:
        self.left = running

    def get(self, job_id: str):
        status = "RUNNING" if self.left > 0 else "SUCCESS"
        self.left -= 1
        return SimpleNamespace(id=job_id, status=status, hyperparameters=None, checkpoints=[])


def test_polls_start_fast_and_slow_down_to_poll_seconds(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(training.time, "sleep", pauses.append)
    client = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=Jobs(running=7)))
    job = training.wait_for_job(client, "j1", timeout=60, poll_seconds=1.0, progress=False)
    assert job.status == "SUCCESS"
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_a_short_poll_interval_is_never_exceeded(monkeypatch):
    pauses: list[float] = []
    monkeypatch.setattr(training.time, "sleep", pauses.append)
    client = SimpleNamespace(fine_tuning=SimpleNamespace(jobs=Jobs(running=3)))
    training.wait_for_job(client, "j1", timeout=60, poll_seconds=0.05, progress=False)
    assert pauses == [0.05, 0.05, 0.05]
