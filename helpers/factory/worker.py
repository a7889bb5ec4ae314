"""Background work: validating new jobs and training started ones, one at a time.

Only one process per data directory runs the worker: it holds ``worker.lock`` (``fcntl.flock``).
Other processes serving the same directory keep trying to take the lock every few seconds; until
then they only serve requests (and enqueue jobs in SQLite, which the lock owner polls). Whoever
takes the lock first repairs what a previous process left half-done (:func:`.recovery.recover`).
The status moves themselves follow :mod:`.job_states`; what a base model needs of the data is
the trainer's :meth:`~.trainers.base.Trainer.check_data`; W&B is in :mod:`.integrations` and the
step arithmetic in :mod:`.planning`.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import random
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ..formatting import iter_examples, read_examples, validate_training_files
from . import integrations, planning, training_cache
from .job_states import IN_TRAINING
from .limits import Limits, available_memory_bytes, gib
from .recovery import recover
from .store import JobRow, Store
from .trainers import Registry
from .trainers.base import (
    Cancelled,
    DataRefused,
    Example,
    StepReport,
    TargetSpec,
    TrainConfig,
)

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
LOCK_RETRY_SECONDS = 2.0
CANCEL_CHECK_SECONDS = 0.2
MAX_PROBLEMS = 20
CHECKPOINT_FRACTION = 0.1  # without validation data: a train-loss checkpoint every 10% of steps


class ValidationFailed(Exception):
    """The job's files or settings cannot be trained on; the message goes in the event."""


def model_id(job: JobRow, workspace_id: str, when: float | None = None) -> str:
    day = datetime.fromtimestamp(when or time.time(), tz=UTC).strftime("%Y%m%d")
    parts = ["ft", "classifier", job.model, workspace_id, day]
    if job.suffix:
        parts.append(job.suffix)
    parts.append(job.id[:8])
    return ":".join(parts)


class Worker:
    def __init__(self, store: Store, registry: Registry, limits: Limits | None = None):
        self.store = store
        self.registry = registry
        self.limits = limits or Limits()
        self.owner = False
        self._lock_file: IO[str] | None = None
        self._stop = threading.Event()
        self._wake = {"validate": threading.Event(), "train": threading.Event()}
        self._threads: list[threading.Thread] = []
        self._secrets: dict[str, str] = {}  # job id -> W&B key, in memory only

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        thread = threading.Thread(target=self._acquire_loop, name="factory-lock", daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for event in self._wake.values():
            event.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._lock_file is not None:
            self._lock_file.close()

    def notify(self) -> None:
        for event in self._wake.values():
            event.set()

    def remember_secret(self, job_id: str, api_key: str) -> None:
        self._secrets[job_id] = api_key

    def forget_secret(self, job_id: str) -> None:
        self._secrets.pop(job_id, None)

    def _acquire_loop(self) -> None:
        lock_file = open(self.store.data_dir / "worker.lock", "a+")  # held for the process lifetime
        while not self._stop.is_set():
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._stop.wait(LOCK_RETRY_SECONDS)
                continue
            self._lock_file = lock_file
            self.owner = True
            log.info("worker lock acquired (pid %d)", os.getpid())
            recover(self.store)
            for name, target in (("validate", self._validate_next), ("train", self._train_next)):
                thread = threading.Thread(
                    target=self._loop, args=(name, target), name=f"factory-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            return
        lock_file.close()

    def _loop(self, name: str, step) -> None:
        wake = self._wake[name]
        while not self._stop.is_set():
            try:
                did_work = step()
            except Exception:  # never let the worker die
                log.exception("worker %s loop error", name)
                did_work = False
            if not did_work:
                wake.wait(POLL_SECONDS)
                wake.clear()

    # -- validation --------------------------------------------------------------------------

    def _validate_next(self) -> bool:
        jobs = self.store.jobs_with_status(["QUEUED"], started=False)
        for job in jobs:
            if self._stop.is_set():
                break
            self.validate(job)
        return bool(jobs)

    def validate(self, job: JobRow) -> None:
        job_id = job.id
        if not self.store.transition(job_id, ["QUEUED"], "VALIDATING"):
            return
        try:
            fields, warnings = self._check(job)
        except ValidationFailed as exc:
            self.store.transition(
                job_id, ["VALIDATING"], "FAILED_VALIDATION", event={"error": str(exc)}
            )
            self.forget_secret(job_id)
            return
        except Exception as exc:
            log.exception("validation of job %s crashed", job_id)
            self.store.transition(
                job_id,
                ["VALIDATING"],
                "FAILED_VALIDATION",
                event={"error": f"validation error: {exc}"},
            )
            self.forget_secret(job_id)
            return
        event = {"warnings": warnings} if warnings else None
        if not self.store.transition(job_id, ["VALIDATING"], "VALIDATED", event=event, **fields):
            return
        log.info("job %s validated", job_id)
        if job.auto_start:
            self.start_job(job_id)

    def start_job(self, job_id: str) -> bool:
        """VALIDATED -> QUEUED (for training); False if the job was not VALIDATED."""
        if self.store.transition(job_id, ["VALIDATED"], "QUEUED", started=1):
            self._wake["train"].set()
            return True
        return False

    def _files(self, ids: list[str], kind: str) -> list[tuple[str, Path]]:
        out = []
        for file_id in ids:
            record = self.store.get_file(file_id)
            path = self.store.file_path(file_id)
            if record is None or not path.exists():
                raise ValidationFailed(f"{kind} file {file_id} does not exist (was it deleted?)")
            out.append((record.filename, path))
        return out

    def _check(self, job: JobRow) -> tuple[dict, list[str]]:
        trainer = self.registry.get(job.model)
        if trainer is None:
            raise ValidationFailed(f"base model {job.model} is not available on this machine")
        train_files = self._files(job.training_files, "training")
        valid_files = self._files(job.validation_files or [], "validation")
        report = validate_training_files(train_files, valid_files or None)
        if not report.ok:
            raise ValidationFailed(_problems(report.errors, report.count("error")))
        targets: list[dict[str, Any]] = [
            {
                "name": info.name,
                "labels": info.labels,
                "weight": 1.0,
                "loss_function": "multi_class" if info.multi_label else "single_class",
            }
            for info in report.targets.values()
        ]
        for requested in job.requested_targets or []:
            match = next((t for t in targets if t["name"] == requested["name"]), None)
            if match is None:
                raise ValidationFailed(
                    f"classifier target {requested['name']!r} does not appear in the training "
                    f"data (targets found: {', '.join(t['name'] for t in targets)})"
                )
            match["weight"] = requested.get("weight", 1.0)

        too_many = [t for t in targets if len(t["labels"]) > self.limits.max_labels]
        if too_many:
            t = too_many[0]
            raise ValidationFailed(
                f"classifier target {t['name']!r} has {len(t['labels'])} labels; this service "
                f"trains at most {self.limits.max_labels} labels per target (serve --max-labels)"
            )
        sample, n_train, data_tokens = _sample_texts([path for _, path in train_files])
        warnings = [str(p) for p in report.warnings[:MAX_PROBLEMS]]
        n_warnings = report.count("warning")
        if n_warnings > MAX_PROBLEMS:
            warnings.append(f"... and {n_warnings - MAX_PROBLEMS} more warnings")
        n_labels = sum(len(t["labels"]) for t in targets)
        try:
            data = trainer.check_data(train_files, sample, n_train, n_labels)
        except DataRefused as exc:
            raise ValidationFailed(str(exc)) from None
        warnings += data.warnings
        if data.memory_bytes is not None:
            self._check_memory(job.model, data.memory_bytes, data.memory_how)
        hp = dict(job.hyperparameters)
        try:
            plan = planning.plan_steps(
                n_train,
                trainer.batch_size,
                data_tokens,
                hp.get("training_steps"),
                hp.get("epochs"),
                self.limits.max_training_steps,
            )
        except planning.TooManySteps as exc:
            raise ValidationFailed(str(exc)) from None
        hp["training_steps"], hp["epochs"] = plan.training_steps, plan.epochs
        per_step = plan.tokens_per_step
        config = TrainConfig(
            hp["training_steps"], hp["learning_rate"], hp["weight_decay"], hp["warmup_fraction"]
        )
        metadata = {
            **job.metadata,
            "device": trainer.device,
            "expected_duration_seconds": int(trainer.expected_seconds(n_train, config)),
            "train_tokens_per_step": per_step,
            "train_tokens": per_step * hp["training_steps"],
            "data_tokens": data_tokens,
            "training_examples": n_train,
            "validation_examples": sum(1 for _, p in valid_files for _ in iter_examples(p)),
        }
        fields = {"classifier_targets": targets, "hyperparameters": hp, "metadata": metadata}
        return fields, warnings

    def _check_memory(self, model: str, need: int, how: str) -> None:
        available = available_memory_bytes()
        if available is None:
            return
        allowed = available * self.limits.max_train_memory_fraction
        if need > allowed:
            raise ValidationFailed(
                f"training {model} on this data needs about {gib(need)} of memory ({how}); "
                f"this machine has {gib(available)} available and the service uses at most "
                f"{self.limits.max_train_memory_fraction:.0%} of it: use fewer labels or "
                "shorter texts, or another base model (GET /v1/models lists them)"
            )

    # -- training ----------------------------------------------------------------------------

    def _train_next(self) -> bool:
        jobs = self.store.jobs_with_status(["QUEUED"], started=True)
        if not jobs:
            return False
        self.train(jobs[0])
        return True

    def train(self, job: JobRow) -> None:
        job_id = job.id
        api_key = self._secrets.pop(job_id, None)
        run = None
        records = job.integrations
        if records and api_key:
            run = integrations.start_run(
                job.id, job.model, job.hyperparameters, records[0], api_key
            )
            if run is not None:
                records = [{**records[0], "url": run.url}, *records[1:]]
        if not self.store.transition(job_id, ["QUEUED"], "RUNNING", integrations=records):
            integrations.finish(run)
            return
        log.info("job %s running (%s)", job_id, job.model)
        tmp = self.store.models_dir / f".tmp-{job_id}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        progress = _Progress(self.store, job_id, run, bool(job.validation_files))
        try:
            trainer = self.registry.get(job.model)
            if trainer is None:
                raise RuntimeError(f"base model {job.model} is not available on this machine")
            cache, key = training_cache.from_env(), ""
            if cache is not None:
                files = [self.store.file_path(f) for f in job.training_files]
                valid_files = [self.store.file_path(f) for f in job.validation_files or []]
                key = cache.key(
                    trainer,
                    {**job.hyperparameters, "config": dataclasses.asdict(_config(job))},
                    job.classifier_targets,
                    files,
                    valid_files,
                )
                lookup = {
                    "model": job.model,
                    "hyperparameters": job.hyperparameters,
                    "files": training_cache.describe(files),
                    "validation_files": training_cache.describe(valid_files),
                }
                cached = cache.restore(key, tmp)
                if cached is not None:
                    cache.record(key, True, **lookup)
                    for report in cached:
                        progress(report)
                    progress.finish()
                    self._publish(job, tmp, progress, info=training_cache.HIT_INFO)
                    return
            started = time.monotonic()
            train, valid, targets, config = self._training_inputs(job)
            trainer.train(train, valid, targets, config, tmp, progress, progress.check_cancelled)
            progress.finish()
            if cache is not None:
                cache.store(key, tmp, progress.reports)
                cache.record(key, False, seconds=round(time.monotonic() - started, 1), **lookup)
        except Cancelled:
            shutil.rmtree(tmp, ignore_errors=True)
            self.store.transition(job_id, IN_TRAINING, "CANCELLED")
            log.info("job %s cancelled", job_id)
            return
        except Exception as exc:
            log.exception("job %s failed", job_id)
            shutil.rmtree(tmp, ignore_errors=True)
            self.store.transition(
                job_id,
                IN_TRAINING,
                "FAILED",
                event={"error": f"training failed: {type(exc).__name__}: {exc}"},
            )
            return
        finally:
            integrations.finish(run)
        self._publish(job, tmp, progress)

    def _training_inputs(self, job: JobRow):
        def examples(ids: list[str]) -> list[Example]:
            return [
                Example(row["text"], row["labels"])
                for file_id in ids
                for row in read_examples(self.store.file_path(file_id))
            ]

        targets = [
            TargetSpec(t["name"], list(t["labels"]), t["loss_function"] == "multi_class")
            for t in job.classifier_targets
        ]
        valid = examples(job.validation_files) if job.validation_files else None
        return examples(job.training_files), valid, targets, _config(job)

    def _publish(
        self, job: JobRow, tmp: Path, progress: _Progress, info: str | None = None
    ) -> None:
        """Move the trained model into place and mark the job SUCCESS (unless cancelled)."""
        job_id = job.id
        final = self.store.models_dir / job_id
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        ft_id = model_id(job, self.store.workspace_id)
        steps = progress.last.step if progress.last else job.hyperparameters["training_steps"]
        per_step = job.metadata.get("train_tokens_per_step") or 0
        record = {
            "id": ft_id,
            "job_id": job_id,
            "root": job.model,
            "created": int(time.time()),
            "classifier_targets": job.classifier_targets,
            "path": f"models/{job_id}",
        }
        ok = self.store.transition(
            job_id,
            ["RUNNING"],
            "SUCCESS",
            event={"info": info} if info else None,
            fine_tuned_model=ft_id,
            trained_tokens=per_step * steps,
            extra_statements=[self.store.model_insert_sql(record)],
        )
        if ok:
            log.info("job %s succeeded: %s", job_id, ft_id)
            return
        shutil.rmtree(final, ignore_errors=True)
        self.store.transition(job_id, ["CANCELLATION_REQUESTED"], "CANCELLED")


SAMPLE_TEXTS = 20_000  # texts a trainer's data check sees at most (a uniform random sample)


def _sample_texts(paths: list[Path]) -> tuple[list[str], int, int]:
    """``(sample, count, words)`` of the files' texts in one streamed pass: a uniform random
    sample of at most :data:`SAMPLE_TEXTS` (reservoir sampling, seeded), how many texts there
    are and their whitespace-separated words; memory does not grow with the files."""
    rng = random.Random(0)
    sample: list[str] = []
    count = words = 0
    for path in paths:
        for row in iter_examples(path):
            count += 1
            words += len(row["text"].split())
            if len(sample) < SAMPLE_TEXTS:
                sample.append(row["text"])
            elif (j := rng.randrange(count)) < SAMPLE_TEXTS:
                sample[j] = row["text"]
    return sample, count, words


def _config(job: JobRow) -> TrainConfig:
    """What the trainer gets of the job's hyperparameters (the seed is the trainers' 0)."""
    hp = job.hyperparameters
    return TrainConfig(
        training_steps=hp["training_steps"],
        learning_rate=hp["learning_rate"],
        weight_decay=hp["weight_decay"],
        warmup_fraction=hp["warmup_fraction"],
    )


def _problems(problems: list, total: int | None = None, limit: int = MAX_PROBLEMS) -> str:
    """The validator's problems, one per line ("file, line N, field 'x': reason"); ``total``
    counts those the report only counted (it keeps the first 1,000 of each kind)."""
    total = len(problems) if total is None else total
    lines = [str(p) for p in problems[:limit]]
    if total > limit:
        lines.append(f"... and {total - limit} more")
    return "\n".join(lines)


class _Progress:
    """The trainer's ``on_step``: checkpoints, W&B logging and cancellation checks.

    A checkpoint is recorded on every evaluation step (the trainer reported validation
    metrics) and on the final step; without validation data, every tenth of the steps instead,
    so the training-loss curve can still be followed. Its ``train_loss`` is the mean of the
    steps' training losses since the previous checkpoint (one batch alone is too noisy to read).
    """

    def __init__(self, store: Store, job_id: str, run, has_validation: bool):
        self.store = store
        self.job_id = job_id
        self.run = run
        self.has_validation = has_validation
        self.last: StepReport | None = None
        self.reports: list[StepReport] = []
        self._interval: list[float] = []  # training losses since the last checkpoint
        self._saved = False
        self._checked = 0.0

    def __call__(self, report: StepReport) -> None:
        self.last = report
        self.reports.append(report)
        self._interval.append(float(report.train_loss))
        self._saved = False
        every = planning.every(report.total_steps, CHECKPOINT_FRACTION)
        if report.valid_loss is not None or (not self.has_validation and report.step % every == 0):
            self._save(report)
        if self.run is not None:
            metrics: dict[str, float | None] = {"train_loss": report.train_loss}
            if report.valid_loss is not None:
                metrics.update(valid_loss=report.valid_loss, valid_accuracy=report.valid_accuracy)
            self.run = integrations.log_metrics(self.run, metrics, report.step)
        self.check_cancelled()

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` once the job is no longer RUNNING (read at most every
        ``CANCEL_CHECK_SECONDS``); also called by trainers before their first step."""
        if time.monotonic() - self._checked >= CANCEL_CHECK_SECONDS:
            self._checked = time.monotonic()
            job = self.store.get_job(self.job_id)
            if job is None or job.status != "RUNNING":
                raise Cancelled()

    def finish(self) -> None:
        if self.last is not None and not self._saved:
            self._save(self.last)

    def _save(self, report: StepReport) -> None:
        metrics = {"train_loss": planning.interval_mean(self._interval)}
        self._interval = []
        if report.valid_loss is not None:
            metrics["valid_loss"] = float(report.valid_loss)
            metrics["valid_mean_token_accuracy"] = float(report.valid_accuracy or 0.0)
        self.store.add_checkpoint(self.job_id, report.step, metrics)
        self._saved = True
