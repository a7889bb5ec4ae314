"""W&B integration (helpers.factory.integrations): the record, the run, and failures that
must never fail a job. ``wandb`` itself is not a dependency; a stand-in module records calls."""

from __future__ import annotations

import sys
import types

import pytest

from helpers.factory import integrations
from helpers.factory.schemas import WandbIntegrationIn

KEY = "wb0123456789abcdef0123456789abcdef012345"


class FakeRun:
    url = "https://wandb.example/run/1"

    def __init__(self, fail_log=False):
        self.logged, self.finished, self.fail_log = [], False, fail_log

    def log(self, metrics, step):
        if self.fail_log:
            raise ConnectionError("W&B is down")
        self.logged.append((step, metrics))

    def finish(self):
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    module = types.SimpleNamespace(calls=[])

    def init(**kwargs):
        module.calls.append(kwargs)
        if kwargs["project"] == "broken":
            raise RuntimeError("no such project")
        return FakeRun()

    module.init = init
    module.Settings = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_records_keep_everything_but_the_key():
    body = WandbIntegrationIn(project="intents", api_key=KEY, run_name="r1")
    (record,) = integrations.integration_records([body])
    assert record == {
        "type": "wandb",
        "project": "intents",
        "name": None,
        "run_name": "r1",
        "url": None,
    }
    assert KEY not in repr(record)
    assert integrations.integration_records(None) is None


def test_a_run_gets_the_key_in_memory_and_the_job_config(fake_wandb):
    record = {"project": "intents", "run_name": "r1", "name": None}
    run = integrations.start_run("job-1", "minilm-l6-v2", {"learning_rate": 1e-4}, record, KEY)
    assert isinstance(run, FakeRun)
    (call,) = fake_wandb.calls
    assert call["settings"] == {"api_key": KEY} and call["name"] == "r1"
    assert call["config"] == {"job_id": "job-1", "model": "minilm-l6-v2", "learning_rate": 1e-4}


def test_failures_are_logged_without_the_key_and_training_goes_on(fake_wandb, caplog):
    assert integrations.start_run("job-2", "m", {}, {"project": "broken"}, KEY) is None
    run = FakeRun(fail_log=True)
    assert integrations.log_metrics(run, {"train_loss": 1.0}, step=1) is None
    assert integrations.log_metrics(None, {"train_loss": 1.0}, step=1) is None
    ok = FakeRun()
    assert integrations.log_metrics(ok, {"train_loss": 0.5}, step=3) is ok
    assert ok.logged == [(3, {"train_loss": 0.5})]
    integrations.finish(ok)
    assert ok.finished
    assert "W&B" in caplog.text and KEY not in caplog.text


def test_without_wandb_installed_there_is_no_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    assert integrations.start_run("job-3", "m", {}, {"project": "p"}, KEY) is None
