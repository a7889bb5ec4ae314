"""The boring parts of running a fine-tuning job: waiting, explaining failures, summarising.

The notebooks make the ``mistralai`` calls themselves (upload, create, start, classify);
these helpers only poll, draw a progress bar, and turn a job into a small record.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm.std import tqdm

from helpers.factory.job_states import FAILURES, STATUSES
from helpers.fileio import write_json  # noqa: F401  (lessons call training.write_json)

MISTRAL_URL = "https://api.mistral.ai"


class JobFailed(RuntimeError):
    """The job ended in FAILED_VALIDATION, FAILED or CANCELLED; the message is the job's own."""

    def __init__(self, job, reason: str):
        self.job = job
        super().__init__(f"job {job.id} ended {job.status}: {reason}")


class JobTimeout(TimeoutError):
    """The job did not reach the wanted status in time (it may still be running)."""


def _dump(obj) -> dict:
    return obj.model_dump() if hasattr(obj, "model_dump") else dict(obj)


def job_error(job) -> str:
    """The reason a job failed, from its newest event carrying an ``error``."""
    for event in sorted(
        getattr(job, "events", None) or [], key=lambda e: e.created_at, reverse=True
    ):
        data = event.data or {}
        if data.get("error"):
            return str(data["error"])
    return "no reason given in the job's events"


def steps_done(job) -> int:
    """The training steps a job has reported so far (its last checkpoint's step number)."""
    return max((c.step_number for c in getattr(job, "checkpoints", None) or []), default=0)


FIRST_POLL_SECONDS = 0.1
"""The wait before ``wait_for_job``'s second poll; each later wait doubles, up to its
``poll_seconds``."""


def resolve_auto(name: str, value: bool | str) -> bool:
    """A lesson's ``True | False | "auto"`` switch as a bool: ``"auto"`` is True only where
    torch sees a CUDA GPU (a step that takes minutes on a CPU runtime runs there by default)."""
    if value is True or value is False:
        return value
    if value == "auto":
        import torch

        return bool(torch.cuda.is_available())
    raise ValueError(f'{name}={value!r}: use True, False or "auto"')


def wait_for_job(
    client,
    job_id: str,
    until: str | Iterable[str] = "SUCCESS",
    timeout: float = 1800,
    poll_seconds: float = 1.0,
    progress: bool = True,
    on_poll: Callable[[Any], None] | None = None,
):
    """Poll ``client.fine_tuning.jobs.get`` until the job reaches a status in ``until``.

    The first polls come quickly (0.1 s apart, doubling up to ``poll_seconds``), so a short job
    or a validation is not followed by a second of waiting; a long job is polled every
    ``poll_seconds``.

    Unlike the cookbook's ``while status != ...`` loops, this stops with :class:`JobFailed`
    (carrying the job's own error) on FAILED_VALIDATION, FAILED or CANCELLED, and with
    :class:`JobTimeout` after ``timeout`` seconds. The progress bar shows training steps
    done out of ``training_steps``; ``on_poll(job)``, when given, is called after every poll
    (e.g. to keep an outer progress bar moving while one of many jobs trains). Returns the
    final job.
    """
    wanted = {until} if isinstance(until, str) else set(until)
    unknown = wanted - set(STATUSES)
    if unknown:
        raise ValueError(f"unknown status(es) {sorted(unknown)}; use {', '.join(STATUSES)}")
    deadline = time.monotonic() + timeout
    pause = min(FIRST_POLL_SECONDS, poll_seconds)
    bar = None
    try:
        while True:
            job = client.fine_tuning.jobs.get(job_id=job_id)
            status = str(job.status)
            if progress:
                total = (job.hyperparameters.training_steps if job.hyperparameters else None) or 0
                if bar is None:
                    bar = tqdm(
                        total=total or None,
                        unit="step",
                        file=sys.stdout,
                        dynamic_ncols=True,
                        mininterval=1.0,
                    )
                bar.set_description(status)
                done = steps_done(job) if status != "SUCCESS" else total or steps_done(job)
                bar.update(max(0, done - bar.n))
            if on_poll is not None:
                on_poll(job)
            if status in wanted:
                return job
            if status in FAILURES:
                raise JobFailed(job, job_error(job))
            if time.monotonic() > deadline:
                raise JobTimeout(
                    f"job {job_id} is still {status} after {timeout:.0f} s; it keeps running on "
                    "the service: wait again, or cancel it with client.fine_tuning.jobs.cancel"
                )
            time.sleep(pause)
            pause = min(2 * pause, poll_seconds)
    finally:
        if bar is not None:
            bar.close()


def train_seconds(job) -> float | None:
    """Seconds from the RUNNING event to the SUCCESS event (None if either is missing)."""
    times = {}
    for event in getattr(job, "events", None) or []:
        status = (event.data or {}).get("status")
        if status in ("RUNNING", "SUCCESS"):
            times.setdefault(status, event.created_at)
    if "RUNNING" in times and "SUCCESS" in times:
        return float(times["SUCCESS"] - times["RUNNING"])
    return None


def job_device(server_url: str, job_id: str, api_key: str = "local") -> str | None:
    """The device the local service trains ``job_id`` on: "cpu", "cuda" or "mps".

    The service puts it in the job's ``metadata``, but the SDK's ``JobMetadata`` model drops
    fields Mistral's API does not have, so this reads the job's JSON directly. None when the
    service does not say (Mistral's API, or a job that has not been validated yet)."""
    import httpx

    response = httpx.get(
        f"{server_url.rstrip('/')}/v1/fine_tuning/jobs/{job_id}",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=30,
    )
    response.raise_for_status()
    return (response.json().get("metadata") or {}).get("device")


def job_record(job, service: str) -> dict:
    """The small JSON record notebook 03 writes for notebook 04 and for batch runs."""
    return {
        "job_id": job.id,
        "fine_tuned_model": job.fine_tuned_model,
        "base_model": job.model,
        "hyperparameters": _dump(job.hyperparameters) if job.hyperparameters else {},
        "status": str(job.status),
        "train_seconds": train_seconds(job),
        "service": service,
    }


def explain_refusal(error, backend: str) -> str:
    """A learner-friendly explanation when a backend refuses to create a training job."""
    status = getattr(error, "status_code", None)
    if backend == "mistral" and status in (404, 410, 422):
        return (
            f"Mistral answered {status}: hosted classifier fine-tuning was retired in July 2026 "
            "(the jobs API now answers 410 Gone), so this step cannot run on api.mistral.ai.\n"
            'Set backend = "local" in the parameters cell to train on this machine with the '
            "project's local Classifier Factory; everything else in the notebook stays the same."
        )
    if status == 401:
        return "The service refused the API key (401). Check MISTRAL_API_KEY."
    return f"The service refused to create the job ({status}): {getattr(error, 'body', error)}"


def connect(backend: str, work_dir: str | os.PathLike):
    """A ``Mistral`` client for ``backend`` ("local" or "mistral") and a printable service name.

    "local" starts (or reuses) the local Classifier Factory with its state in
    ``{work_dir}/factory``; "mistral" uses api.mistral.ai with the key from
    :func:`helpers.secrets.get_secret`. Notebook 03 shows these calls step by step.
    """
    from mistralai.client import Mistral

    from helpers.secrets import get_secret

    if backend == "local":
        from helpers.factory import start_local_factory

        url = start_local_factory(Path(work_dir) / "factory")
        return Mistral(api_key="local", server_url=url), url
    if backend == "mistral":
        key = get_secret("MISTRAL_API_KEY")
        if not key:
            raise RuntimeError(
                "backend='mistral' needs MISTRAL_API_KEY (environment or Colab "
                "secrets); or use backend='local'"
            )
        return Mistral(api_key=key, server_url=MISTRAL_URL), MISTRAL_URL
    raise ValueError(f"backend={backend!r}: use 'local' or 'mistral'")


def run_job(
    client,
    base_model: str,
    train_path,
    validation_path=None,
    hyperparameters: dict | None = None,
    timeout: float = 1800,
    progress: bool = False,
):
    """Upload, create with ``auto_start=True`` and wait for SUCCESS — the whole flow in one call.

    For side experiments (baselines, sweeps) once a lesson has shown the individual steps.
    """

    def upload(path):
        with open(path, "rb") as f:
            return client.files.upload(file={"file_name": Path(path).name, "content": f}).id

    job = client.fine_tuning.jobs.create(
        model=base_model,
        job_type="classifier",
        training_files=[{"file_id": upload(train_path), "weight": 1}],
        validation_files=[upload(validation_path)] if validation_path else None,
        hyperparameters=hyperparameters or {},
        auto_start=True,
    )
    return wait_for_job(client, job.id, "SUCCESS", timeout=timeout, progress=progress)
