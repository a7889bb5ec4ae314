"""Benchmark splits built from the shared data (``../shared/data`` relative to the repo root).

* ``banking77``: the official 10,003 train / 3,080 test rows (77 intents); no validation split.
* ``clinc150``: the in-scope rows of the official "full" split (150 intents, 15,000 train /
  3,000 validation / 4,500 test); out-of-scope rows are left out.
* ``massive_proxy``: a stand-in for MASSIVE's 16-intent subset (we do not have MASSIVE here):
  16 intents of short voice-assistant requests, 6,644 rows re-split 80/10/10 stratified (seed 0):
  5,315 train / 664 validation / 665 test, like the reference's 5,313 / 664 / 665.

  - 7 SNIPS intents (AddToPlaylist, BookRestaurant, GetWeather, PlayMusic, RateBook,
    SearchCreativeWork, SearchScreeningEvent): 692 rows each, sampled (seed 0) from all splits;
  - 8 CLINC150 intents chosen to be confusable in pairs, like MASSIVE's calendar_set /
    calendar_query / alarm_set ones: alarm, timer, time, date, calendar, calendar_update,
    reminder, reminder_update (all 150 rows of each, train+validation+test pooled);
  - 1 catch-all intent like MASSIVE's general_quirky: 600 CLINC150 out-of-scope rows
    (sampled, seed 0) labelled ``oos``.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def cpu_flags() -> list[str]:
    """The CPU's vector extensions that change speed here (AVX2, AVX-512, AMX, bf16), from
    ``/proc/cpuinfo``; recorded beside every timing (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.split(":", 1)[-1].split())
    return sorted(f for f in flags if f == "avx2" or f.startswith(("avx512", "amx")) or "bf16" in f)


DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"

SNIPS_INTENTS = [
    "AddToPlaylist",
    "BookRestaurant",
    "GetWeather",
    "PlayMusic",
    "RateBook",
    "SearchCreativeWork",
    "SearchScreeningEvent",
]
CLINC_INTENTS = [
    "alarm",
    "timer",
    "time",
    "date",
    "calendar",
    "calendar_update",
    "reminder",
    "reminder_update",
]
SNIPS_PER_INTENT = 692
OOS_ROWS = 600

Split = tuple[list[str], list[str]]


def _rows(data_root: Path, name: str) -> list[dict]:
    with open(data_root / name / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _split(rows: list[dict], split: str) -> Split:
    sel = [r for r in rows if r["split"] == split]
    return [r["text"] for r in sel], [r["label_text"] for r in sel]


def _massive_proxy(data_root: Path, seed: int = 0) -> dict[str, Split]:
    import numpy as np
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    texts: list[str] = []
    labels: list[str] = []
    snips = _rows(data_root, "snips")
    for intent in SNIPS_INTENTS:
        pool = [r["text"] for r in snips if r["label_text"] == intent]
        pick = rng.choice(len(pool), size=SNIPS_PER_INTENT, replace=False)
        texts += [pool[i] for i in sorted(pick)]
        labels += [intent] * SNIPS_PER_INTENT
    clinc = _rows(data_root, "clinc150")
    for intent in CLINC_INTENTS:
        pool = [r["text"] for r in clinc if r["label_text"] == intent]
        texts += pool
        labels += [intent] * len(pool)
    oos = [r["text"] for r in clinc if r["label_text"] == "oos"]
    pick = rng.choice(len(oos), size=OOS_ROWS, replace=False)
    texts += [oos[i] for i in sorted(pick)]
    labels += ["oos"] * OOS_ROWS

    x_train, x_rest, y_train, y_rest = train_test_split(
        texts, labels, test_size=0.2, stratify=labels, random_state=seed
    )
    x_valid, x_test, y_valid, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=seed
    )
    return {"train": (x_train, y_train), "validation": (x_valid, y_valid), "test": (x_test, y_test)}


def load(dataset: str, data_root: Path = DEFAULT_DATA_ROOT) -> dict[str, Split]:
    """``{"train": (texts, labels), "validation": ... (may be empty), "test": ...}``."""
    data_root = Path(data_root)
    if dataset == "massive_proxy":
        return _massive_proxy(data_root)
    if dataset == "banking77":
        rows = _rows(data_root, "banking77")
    elif dataset == "clinc150":
        rows = [r for r in _rows(data_root, "clinc150") if r["label_text"] != "oos"]
    else:
        raise ValueError(f"unknown dataset {dataset!r}")
    return {s: _split(rows, s) for s in ("train", "validation", "test")}
