"""Shared fixtures: small local datasets in the mteb schema, written per test session."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

# 16 kept intents whose sizes reproduce the cookbook's 5,313 / 664 / 665 split
# (6 capped at 600, 10 between 200 and 600) plus 3 intents below min_samples.
FIXTURE_COUNTS = {f"scen{i}_intent{i}": 700 + 13 * i for i in range(6)}
FIXTURE_COUNTS |= {f"scen{i}_intent{i}": 300 + (4 if i < 14 else 5) for i in range(6, 16)}
FIXTURE_COUNTS |= {"rare_one": 120, "rare_two": 199, "rare_three": 40}


def write_mteb_folder(folder: Path, counts: dict[str, int], langs=("en", "fr"), seed=0) -> Path:
    """A folder with train/validation/test.jsonl in the mteb schema (synthetic utterances)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    labels = sorted(counts)
    words = ["set", "play", "what", "tell", "turn", "show", "book", "order", "call", "find"]
    for split, share in (("train", 1.0), ("validation", 0.15), ("test", 0.15)):
        rows = []
        for lang in langs:
            for label in labels:
                for j in range(max(1, int(counts[label] * share))):
                    text = f"{rng.choice(words)} {label.replace('_', ' ')} number {j} {lang}"
                    rows.append(
                        {
                            "id": f"{lang}-{split}-{len(rows)}",
                            "label": labels.index(label),
                            "label_text": label,
                            "text": text,
                            "lang": lang,
                        }
                    )
        rng.shuffle(rows)
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return folder


# What Dask's nanny writes into the environment of the process that starts it (its
# "pre-spawn" settings), and never takes back
DASK_PRE_SPAWN = (
    "MALLOC_TRIM_THRESHOLD_",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "KMP_DUPLICATE_LIB_OK",
    "KMP_INIT_AT_FORK",
    "PYTHONHASHSEED",
    "__DASK_PARENT_PID",
)


@pytest.fixture(autouse=True, scope="module")
def no_dask_settings_leak():
    """Put back what a module's in-process Dask cluster wrote into ``os.environ``: every lesson
    kernel started later in the session inherits it, and ``MALLOC_TRIM_THRESHOLD_=65536``
    alone made the lessons' training ~1.5x slower."""
    before = {name: os.environ.get(name) for name in DASK_PRE_SPAWN}
    yield
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def training_cache_folder(tmp_path_factory):
    """The run's content-addressed training cache folder (``FACTORY_TRAINING_CACHE`` when the
    caller chose one, kept after the run; else a temporary one), without putting it in the
    environment: a service test passes it to its own service only (``test_export.py`` trains
    lesson 3's model there, so strict nbval of lesson 3 later restores it)."""
    if os.environ.get("FACTORY_TRAINING_CACHE"):
        yield Path(os.environ["FACTORY_TRAINING_CACHE"])
        return
    folder = tmp_path_factory.mktemp("training_cache")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def training_cache(training_cache_folder):
    """The training cache in the environment for the rest of the run, for the tests that execute
    lessons: every service started after it — in a lesson's kernel (strict nbval's too) or in
    the Colab simulation's environment — trains a given recipe, data and seed once. Not for
    the service tests, which cancel and interrupt trainings on purpose. Entries hard-link the
    trained files, so they take almost no extra disk."""
    before = os.environ.get("FACTORY_TRAINING_CACHE")
    os.environ["FACTORY_TRAINING_CACHE"] = str(training_cache_folder)
    yield training_cache_folder
    if before is None:
        del os.environ["FACTORY_TRAINING_CACHE"]


@pytest.fixture(scope="module")
def module_tmp(request, tmp_path_factory):
    """``module_tmp(name)`` makes a folder as ``tmp_path_factory.mktemp(name)`` does, for a
    module's fixtures; the folders go when the module's tests are done, unless one of them
    failed (what ``tmp_path_retention_policy = "failed"`` does for ``tmp_path``). A trained
    encoder takes ~180 MB with its serving graph; kept to the session's end, the suite's
    folders reached 9.2 GB under /tmp."""
    made: list[Path] = []
    failed_before = request.session.testsfailed

    def mktemp(name: str) -> Path:
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp
    if request.session.testsfailed == failed_before:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def massive_like(tmp_path_factory) -> Path:
    """A local folder shaped like MASSIVE: the seed's procedure gives 16 intents, 5313/664/665."""
    return write_mteb_folder(tmp_path_factory.mktemp("massive_like"), FIXTURE_COUNTS)


@pytest.fixture(scope="session")
def small_massive_like(tmp_path_factory) -> Path:
    """A small MASSIVE-shaped folder for fast end-to-end runs: 4 intents × 100 rows (+ 1 rare)."""
    counts = {
        "alarm_set": 100,
        "alarm_query": 100,
        "play_music": 100,
        "weather_query": 100,
        "rare_intent": 20,
    }
    return write_mteb_folder(tmp_path_factory.mktemp("small_massive_like"), counts, langs=("en",))
