"""Recreate a lesson's missing inputs in ``work_dir``, so that every lesson also runs alone.

Each Colab notebook gets its own runtime, so lesson 03 opened from its badge finds no
``train.jsonl``: lesson 02 wrote it in another runtime. Lessons 02+ therefore start with one
line::

    from helpers import pipeline
    pipeline.ensure("model", work_dir)          # e.g. lesson 04: needs splits, JSONL, job.json

which checks ``work_dir`` for what the earlier lessons would have left there and, for whatever
is missing, runs the earlier lessons' steps through ``helpers`` with the same shared parameters:

========== ================================================================ ==============
step       files in ``work_dir``                                            written by
========== ================================================================ ==============
"splits"   ``splits/train.parquet``, ``validation.parquet``, ``test.parquet`` lesson 01
"jsonl"    ``train.jsonl``, ``validation.jsonl``, ``test.jsonl``                lesson 02
"model"    ``job.json`` (+ the fine-tuned model in the local service's state) lesson 03
========== ================================================================ ==============

Asking for a step ensures every step before it. Files that are there are reused as they are
(lessons run in order recreate nothing). ``ensure`` prints one line: what was missing, what it
did and how long it took — or that everything was there; when it has to train lesson 3's
model again (minutes on a CPU), it says so first and shows the job's progress bar meanwhile, so
a cell that trains never looks hung. It returns the paths as an :class:`Inputs`.

Keyword parameters, with the lessons' defaults (a lesson passes the parameters it declares;
the others keep these defaults, which ``tests/unit/test_pipeline.py`` checks against the
parameter cells of lessons 01 and 03):

- splits: ``data_source`` (hub id, ``"sample"``, or a local folder/file), ``lang``,
  ``min_samples``, ``max_samples``, ``seed`` — as in :func:`helpers.data.load_splits`;
- model: ``backend`` (only ``"local"`` can train; api.mistral.ai retired classifier training),
  ``base_model``, ``training_steps``, ``learning_rate``, ``timeout_minutes``.

A recreated ``job.json`` is written exactly as lesson 03 writes it
(:func:`helpers.training.job_record`), by a job on the local Classifier Factory whose state is
in ``{work_dir}/factory``, so lesson 04 finds the model there.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import data

STEPS = ("splits", "jsonl", "model")
PRODUCED_BY = {
    "splits": "01_explore_data",
    "jsonl": "02_format_data",
    "model": "03_train_classifier",
}
JSONL_SPLITS = data.SPLITS


@dataclass(frozen=True)
class Inputs:
    """Where a lesson's inputs are, and what :func:`ensure` did to get them."""

    work_dir: Path
    recreated: tuple[str, ...]  # the steps that were run, in order (empty: all reused)
    seconds: float

    @property
    def splits_dir(self) -> Path:
        return self.work_dir / "splits"

    def jsonl(self, split: str) -> Path:
        """``train.jsonl``, ``validation.jsonl`` or ``test.jsonl`` in ``work_dir``."""
        return self.work_dir / f"{split}.jsonl"

    @property
    def job_file(self) -> Path:
        return self.work_dir / "job.json"


def missing(step: str, work_dir: str | os.PathLike) -> list[str]:
    """The files of ``step`` that are not in ``work_dir`` (relative names; empty: complete)."""
    work = Path(work_dir)
    if step == "splits":
        names = [f"splits/{name}.parquet" for name in data.SPLITS]
    elif step == "jsonl":
        names = [f"{name}.jsonl" for name in JSONL_SPLITS]
    elif step == "model":
        names = ["job.json"]
    else:
        raise ValueError(f"step={step!r}: use one of {', '.join(map(repr, STEPS))}")
    return [name for name in names if not (work / name).is_file()]


def ensure(
    step: str,
    work_dir: str | os.PathLike = "artifacts",
    *,
    data_source: str = data.HUB_ID,
    lang: str = "en",
    min_samples: int = 200,
    max_samples: int = 600,
    seed: int = 42,
    backend: str = "local",
    base_model: str = "minilm-l6-v2",
    training_steps: int = 450,
    learning_rate: float = 0.0002,
    timeout_minutes: float = 30,
) -> Inputs:
    """Make sure ``work_dir`` holds the outputs of ``step`` and of every step before it.

    ``step`` is ``"splits"``, ``"jsonl"`` or ``"model"``; see the module docstring for the
    files and parameters. Prints one line; returns :class:`Inputs`.
    """
    if step not in STEPS:
        raise ValueError(f"step={step!r}: use one of {', '.join(map(repr, STEPS))}")
    from helpers.notebook import resolve_work_dir

    work = resolve_work_dir(work_dir)
    wanted = STEPS[: STEPS.index(step) + 1]
    gaps = {s: missing(s, work) for s in wanted}
    # a step reruns when its files are missing or when a step it depends on reran
    todo: list[str] = []
    for s in wanted:
        if gaps[s] or todo:
            todo.append(s)
    if not todo:
        files = [f for s in wanted for f in _shown(s)]
        print(f"pipeline: {', '.join(files)} already in work_dir; reusing them")
        return Inputs(work, (), 0.0)
    if "model" in todo and backend != "local":
        raise RuntimeError(
            f"{work / 'job.json'} is missing and backend={backend!r} cannot train it again "
            "(api.mistral.ai retired classifier fine-tuning). Run "
            f"notebooks/{PRODUCED_BY['model']}.ipynb with backend='local', set model_id, "
            "or use backend='local'."
        )

    start = time.monotonic()
    done: list[str] = []
    splits = None
    if "splits" in todo:
        splits = data.load_splits(data_source, lang, min_samples, max_samples, seed)
        data.save_splits(splits, work)
        done.append(f"made the splits from {splits.source} (lang={lang!r}, seed={seed})")
    if "jsonl" in todo:
        from helpers import formatting

        splits = splits or data.load_saved_splits(work)
        for name in JSONL_SPLITS:
            formatting.dataset_to_jsonl(getattr(splits, name), work / f"{name}.jsonl")
        done.append("wrote the JSONL training files")
    if "model" in todo:
        print(
            f"pipeline: no trained model in work_dir: training lesson 03's ({base_model}, "
            f"{training_steps} steps) on the local service; progress below",
            flush=True,
        )
        model = _train(work, base_model, training_steps, learning_rate, timeout_minutes)
        done.append(f"trained {model} ({base_model}, {training_steps} steps) on the local service")
    seconds = time.monotonic() - start
    absent = [f for s in todo for f in gaps[s]]
    lessons = ", ".join(PRODUCED_BY[s][:2] for s in todo)
    print(
        f"pipeline: work_dir lacked {_brief(absent)}, so it redid lesson(s) {lessons}: "
        f"{'; '.join(done)} — {seconds:.0f} s"
    )
    return Inputs(work, tuple(todo), seconds)


def _shown(step: str) -> list[str]:
    return {"splits": ["splits/"], "jsonl": ["*.jsonl"], "model": ["job.json"]}[step]


def _brief(names: list[str]) -> str:
    """``splits/train.parquet, splits/test.parquet, job.json`` -> ``splits/, job.json``."""
    folders = sorted({n.split("/")[0] + "/" for n in names if "/" in n})
    return ", ".join(folders + [n for n in names if "/" not in n])


def _train(
    work: Path, base_model: str, training_steps: int, learning_rate: float, timeout_minutes: float
) -> str:
    """Lesson 03's job on the local service; writes ``job.json`` like lesson 03 does."""
    from helpers import training

    client, service = training.connect("local", work)
    job = training.run_job(
        client,
        base_model,
        work / "train.jsonl",
        work / "validation.jsonl",
        {"training_steps": training_steps, "learning_rate": learning_rate},
        timeout=timeout_minutes * 60,
        progress=True,
    )
    training.write_json(work / "job.json", training.job_record(job, service=service))
    return job.fine_tuned_model
