"""The request side of a job's life cycle: create (with its checks), start and cancel.

The statuses and the moves between them are in :mod:`.job_states`; the
:class:`~.worker.Worker` makes the background moves; :func:`.recovery.recover` repairs what a
stopped process left behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NO_JOB, conflict, invalid, not_found
from .integrations import integration_records
from .job_states import TERMINAL

if TYPE_CHECKING:
    from .limits import Limits
    from .schemas import JobCreate
    from .store import JobRow, Store
    from .trainers import Registry
    from .worker import Worker

CANCEL_RETRIES = 5  # the worker may move the job between our read and our write


def refusal(model: str, available: list[str]) -> str:
    hosted = ""
    if "ministral" in model or "mistral" in model:
        hosted = (
            f"{model} is a Mistral-hosted model whose weights are not available locally, and "
            "Mistral retired hosted classifier training in July 2026. "
        )
    return (
        f"{hosted}Model {model!r} cannot be fine-tuned on this machine; "
        f"use one of: {', '.join(available)}."
    )


class Jobs:
    """Request-side job rules: create (with its checks), start and cancel."""

    def __init__(self, store: Store, registry: Registry, worker: Worker, limits: Limits):
        self.store = store
        self.registry = registry
        self.worker = worker
        self.limits = limits

    def get(self, job_id: str) -> JobRow:
        job = self.store.get_job(job_id)
        if job is None:
            raise not_found(NO_JOB)
        return job

    def create(self, body: JobCreate) -> JobRow:
        from .trainers import hyperparameters_with_defaults

        if body.job_type == "completion":
            raise invalid(
                ["body", "job_type"],
                "the local Classifier Factory only runs classifier jobs (job_type='classifier')",
                body.job_type,
            )
        trainer = self.registry.get(body.model)
        if trainer is None:
            raise invalid(
                ["body", "model"], refusal(body.model, self.registry.available()), body.model
            )
        steps = body.hyperparameters.training_steps
        if steps is not None and steps > self.limits.max_training_steps:
            raise invalid(
                ["body", "hyperparameters", "training_steps"],
                f"at most {self.limits.max_training_steps} training steps "
                "(serve --max-training-steps)",
                steps,
            )
        if not body.training_files:
            raise invalid(["body", "training_files"], "At least one training file is required.", [])
        for field, ids in (
            ("training_files", [f.file_id for f in body.training_files]),
            ("validation_files", body.validation_files or []),
        ):
            repeated = sorted({i for i in ids if ids.count(i) > 1})
            if repeated:
                raise invalid(
                    ["body", field],
                    f"file {repeated[0]} is listed {ids.count(repeated[0])} times; list each "
                    "file once (repeat its lines in the file to give them more weight)",
                    repeated[0],
                )
        names = [t.name for t in body.classifier_targets or []]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise invalid(
                ["body", "classifier_targets"],
                f"classifier target {twice[0]!r} is given {names.count(twice[0])} times; "
                "give each target once",
                twice[0],
            )
        total = 0
        for kind, ids in (
            ("Training", [f.file_id for f in body.training_files]),
            ("Validation", body.validation_files or []),
        ):
            for file_id in ids:
                record = self.store.get_file(file_id)
                if record is None:
                    raise not_found(f"{kind} file {file_id} does not exist.")
                total += record.bytes
        cap = self.limits.max_training_bytes
        if total > cap:
            raise invalid(
                ["body", "training_files"],
                f"the job's files hold {total / 2**20:.1f} MiB; one job trains on at most "
                f"{cap / 2**20:g} MiB of training and validation data (serve "
                "--max-training-mb): sample the data, or split it into several jobs",
                total,
            )
        integrations = integration_records(body.integrations)
        job = self.store.create_job(
            {
                "model": self.registry.canonical(body.model),
                "auto_start": int(body.auto_start),
                "training_files": [f.file_id for f in body.training_files],
                "validation_files": body.validation_files,
                "hyperparameters": hyperparameters_with_defaults(
                    trainer, body.hyperparameters.model_dump()
                ),
                "suffix": body.suffix,
                "integrations": integrations,
                "requested_targets": [t.model_dump() for t in body.classifier_targets or []]
                or None,
                "metadata": {"cost": 0.0, "cost_currency": "EUR"},
            }
        )
        if body.integrations:
            self.worker.remember_secret(job.id, body.integrations[0].api_key)
        self.worker.notify()
        return job

    def start(self, job_id: str) -> JobRow:
        """VALIDATED -> QUEUED for training; 409 from any other status."""
        self.get(job_id)
        if not self.worker.start_job(job_id):
            status = self.get(job_id).status
            raise conflict(
                f"Job {job_id} cannot be started: its status is {status}; only "
                "VALIDATED jobs can be started."
            )
        return self.get(job_id)

    def cancel(self, job_id: str) -> JobRow:
        """Cancel now, or ask the trainer to stop (RUNNING); a finished job is left as it is."""
        for _ in range(CANCEL_RETRIES):
            status = self.get(job_id).status
            if status in TERMINAL or status == "CANCELLATION_REQUESTED":
                break
            to = "CANCELLATION_REQUESTED" if status == "RUNNING" else "CANCELLED"
            if self.store.transition(job_id, [status], to):
                if to == "CANCELLED":
                    self.worker.forget_secret(job_id)
                break
        return self.get(job_id)
