"""Weights & Biases: the job's integration record, and a run that a training logs to.

The API key travels in memory only (the worker keeps it per job until training starts); it is
never stored, logged or echoed. Without ``wandb`` installed, or when W&B fails, training goes
on without it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def integration_records(requested: Sequence[Any] | None) -> list[dict] | None:
    """The job's ``integrations`` as stored and served: the request's, without the key."""
    if not requested:
        return None
    return [
        {"type": "wandb", "project": i.project, "name": i.name, "run_name": i.run_name, "url": None}
        for i in requested
    ]


def start_run(job_id: str, model: str, hyperparameters: dict, integration: dict, api_key: str):
    """A W&B run when ``wandb`` is importable, else None; the key is passed in memory."""
    try:
        import wandb
    except ImportError:
        return None
    try:
        return wandb.init(
            project=integration["project"],
            name=integration.get("run_name") or integration.get("name"),
            config={"job_id": job_id, "model": model, **hyperparameters},
            settings=wandb.Settings(api_key=api_key),
            reinit=True,
        )
    except Exception as exc:
        log.warning("W&B run for job %s not started: %s", job_id, type(exc).__name__)
        return None


def log_metrics(run, metrics: dict[str, float | None], step: int):
    """Log to ``run``; the run to keep using (None once W&B failed: it must not fail the job)."""
    if run is None:
        return None
    try:
        run.log(metrics, step=step)
        return run
    except Exception as exc:
        log.warning("W&B logging failed: %s", type(exc).__name__)
        return None


def finish(run) -> None:
    if run is not None:
        try:
            run.finish()
        except Exception as exc:
            log.warning("W&B finish failed: %s", type(exc).__name__)
