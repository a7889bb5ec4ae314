"""A content-addressed cache of trained models: the same recipe, data and seed train once.

Off unless ``FACTORY_TRAINING_CACHE`` names a folder (the test suite sets it for one run, so
the lessons it executes several times share each model; a classroom re-running a lesson may set
it too). The key is a SHA-256 of everything that decides the trained weights: the trainer's
class, settings, device and source code, the versions of Python and the numeric libraries (the
Colab simulation trains with Colab's torch), the job's hyperparameters (seed included) and
targets, and the bytes of its training and validation files (not their names or ids). A hit
copies the model folder (hard links where the file system allows) and replays the step reports
the original training made, so the job's checkpoints and W&B metrics are that training's; the
job's SUCCESS event says the model came from the cache.

Entries are written to a temporary folder and renamed into place, so a reader never sees a
half-written one; model files are never modified after training, which makes hard links safe.
Every lookup appends a line to ``lookups.jsonl`` in the folder (key, hit or miss, base model,
hyperparameters, the files' sizes and digests, training seconds on a miss): two trainings that
were meant to share an entry but did not show there side by side.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from ..fileio import sha256_file
from .trainers.base import StepReport

log = logging.getLogger(__name__)

ENV = "FACTORY_TRAINING_CACHE"
REPORTS = "reports.json"
LOOKUPS = "lookups.jsonl"
MODEL = "model"
HIT_INFO = f"model restored from the training cache ({ENV}): same recipe, data and seed"
_TRAINERS = Path(__file__).resolve().parent / "trainers"


def from_env() -> TrainingCache | None:
    folder = os.environ.get(ENV)
    return TrainingCache(Path(folder)) if folder else None


def _code_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_TRAINERS.rglob("*.py")):
        digest.update(path.relative_to(_TRAINERS).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def trainer_recipe(trainer: Any) -> dict:
    """The trainer's class and its plain settings (numbers, strings, flags, its recipe)."""
    settings = {
        name: dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        for name, value in sorted(vars(trainer).items())
        if not name.startswith("_")
        and (
            isinstance(value, str | int | float | bool | type(None))
            or (dataclasses.is_dataclass(value) and not isinstance(value, type))
        )
    }
    return {
        "class": f"{type(trainer).__module__}.{type(trainer).__qualname__}",
        "batch_size": trainer.batch_size,
        "device": trainer.device,
        "settings": settings,
    }


@functools.cache
def library_versions() -> dict[str, str]:
    """Python's and the numeric libraries' versions: another torch may train other weights."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("torch", "numpy", "scikit-learn", "transformers", "tokenizers"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "absent"
    return versions


@functools.lru_cache(maxsize=256)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)  # size and mtime_ns: the cache key


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes, read once per size and modification time (the key and the
    lookup log both need it)."""
    stat = path.stat()
    return _digest(str(path), stat.st_size, stat.st_mtime_ns)


def describe(paths: list[Path]) -> list[str]:
    """Each file as ``<size> bytes, sha256 <first 12 hex digits>``, for the lookup log."""
    return [f"{p.stat().st_size} bytes, sha256 {file_digest(p)[:12]}" for p in paths]


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


class TrainingCache:
    def __init__(self, folder: Path):
        self.folder = folder

    def key(
        self,
        trainer: Any,
        hyperparameters: dict,
        targets: list,
        training_files: list[Path],
        validation_files: list[Path],
    ) -> str:
        digest = hashlib.sha256()
        head = {
            "recipe": trainer_recipe(trainer),
            "code": _code_digest(),
            "versions": library_versions(),
            "hyperparameters": hyperparameters,
            "targets": targets,
            "files": [len(training_files), len(validation_files)],
        }
        digest.update(json.dumps(head, sort_keys=True, default=str).encode())
        for path in [*training_files, *validation_files]:
            digest.update(file_digest(path).encode())
        return digest.hexdigest()

    def record(self, key: str, hit: bool, **details: Any) -> None:
        """Append one lookup to ``lookups.jsonl``; trouble here never fails the job."""
        line = json.dumps({"key": key[:12], "hit": hit, **details}, sort_keys=True, default=str)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / LOOKUPS, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            log.warning("training cache: lookup not logged: %s", exc)

    def restore(self, key: str, out_dir: Path) -> list[StepReport] | None:
        """Copy the cached model into ``out_dir`` (empty) and return its step reports."""
        entry = self.folder / key
        try:
            reports = json.loads((entry / REPORTS).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.copytree(entry / MODEL, out_dir, copy_function=_link_or_copy)
        log.info("training cache hit %s", key[:12])
        return [StepReport(**r) for r in reports]

    def store(self, key: str, model_dir: Path, reports: list[StepReport]) -> None:
        """Keep a copy of a finished training; trouble here never fails the job."""
        entry = self.folder / key
        if entry.exists():
            return
        tmp = self.folder / f".tmp-{key[:12]}-{uuid.uuid4().hex[:8]}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.copytree(model_dir, tmp / MODEL, copy_function=_link_or_copy)
            (tmp / REPORTS).write_text(
                json.dumps([dataclasses.asdict(r) for r in reports]), encoding="utf-8"
            )
            os.replace(tmp, entry)
        except OSError as exc:  # e.g. another process stored the same key first
            log.warning("training cache: %s not stored: %s", key[:12], exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
