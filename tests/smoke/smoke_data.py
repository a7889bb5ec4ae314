"""Tiny synthetic copies of the shared data sets, for the smoke tier's ``--data-root``.

The benchmarks read ``../shared/data`` (not in the repository; a fresh clone has none). The tiny
cases pass ``--data-root`` to a folder written here in the same layout and schemas
(``benchmarks/bench_data.py``, ``/work/shared/data/*/SOURCE.md``), with synthetic utterances:

* ``banking77/banking77.jsonl`` and ``clinc150/clinc150.jsonl`` and ``snips/snips.jsonl``: one
  JSON object per line, ``text``, ``label_text``, ``scenario``, ``split`` (train / validation /
  test), ``lang``; CLINC150's out-of-scope rows have ``label_text`` ``oos``, scenario null;
  Banking77 has no validation rows;
* ``massive_en/train.jsonl`` and ``validation.jsonl`` in the ``mteb/amazon_massive_intent``
  schema (``id``, ``label``, ``label_text``, ``text``, ``lang``): 3 intents with the 200 training
  rows the cookbook's filter keeps (``min_samples=200``) and 3 smaller ones it drops (the
  out-of-scope pool of lesson 7 and ``bench_oos.py``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# intent -> words its utterances are made of (distinct words: a few steps learn them)
WORDS = {
    # banking77
    "card_arrival": "card arrive delivery post waiting mail",
    "exchange_rate": "exchange rate currency euro dollar convert",
    "lost_or_stolen_card": "lost stolen card missing thief block",
    "top_up_failed": "top up failed balance money declined",
    # clinc150 (bench_data.CLINC_INTENTS: the massive_proxy subset) and its out-of-scope rows
    "alarm": "alarm wake ring morning clock early",
    "timer": "timer countdown minutes stop start egg",
    "time": "time hour now clock zone current",
    "date": "date today day month calendar year",
    "calendar": "calendar meeting schedule week event plan",
    "calendar_update": "calendar update move change meeting reschedule",
    "reminder": "reminder remind remember note list tell",
    "reminder_update": "reminder update change edit delete remind",
    "oos": "penguin volcano sandwich guitar marathon poem",
    # snips (bench_data.SNIPS_INTENTS)
    "AddToPlaylist": "add playlist song track list put",
    "BookRestaurant": "book restaurant table dinner seats reserve",
    "GetWeather": "weather rain forecast sunny cold snow",
    "PlayMusic": "play music song album artist listen",
    "RateBook": "rate book stars novel points rating",
    "SearchCreativeWork": "find show painting game movie search",
    "SearchScreeningEvent": "cinema screening showtimes movie theatre schedule",
    # massive_en: 3 kept intents, 3 dropped ones (the out-of-scope pool)
    "alarm_set": "alarm set wake morning seven ring",
    "play_music": "play music song jazz album radio",
    "weather_query": "weather rain forecast sunny umbrella cold",
    "cooking_recipe": "recipe cook bake pasta oven soup",
    "transport_taxi": "taxi cab ride driver airport car",
    "news_query": "news headlines today paper politics sport",
}
FILLERS = ["please", "now", "for me", "quickly", "today", "again", "right away", "thanks"]
BANKING = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed"]
CLINC = [
    "alarm",
    "timer",
    "time",
    "date",
    "calendar",
    "calendar_update",
    "reminder",
    "reminder_update",
]
SNIPS = [
    "AddToPlaylist",
    "BookRestaurant",
    "GetWeather",
    "PlayMusic",
    "RateBook",
    "SearchCreativeWork",
    "SearchScreeningEvent",
]
MASSIVE_KEPT = ["alarm_set", "play_music", "weather_query"]
MASSIVE_DROPPED = ["cooking_recipe", "transport_taxi", "news_query"]


def utterances(intent: str, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct synthetic utterances of ``intent``."""
    words = WORDS[intent].split()
    out: list[str] = []
    while len(out) < n:
        text = " ".join([*rng.sample(words, 3), rng.choice(FILLERS), str(len(out))])
        out.append(text)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def converted(
    intents: list[str], per_split: dict[str, int], rng: random.Random, scenario=None
) -> list[dict]:
    """Rows of a converted data set: ``text``, ``label_text``, ``scenario``, ``split``, ``lang``."""
    rows = []
    for intent in intents:
        texts = utterances(intent, sum(per_split.values()), rng)
        for split, n in per_split.items():
            for _ in range(n):
                rows.append(
                    {
                        "text": texts.pop(),
                        "label_text": intent,
                        "scenario": scenario(intent) if scenario else None,
                        "split": split,
                        "lang": "en",
                    }
                )
    rng.shuffle(rows)
    return rows


def write_shared_data(root: Path, seed: int = 0) -> Path:
    """The tiny data sets under ``root`` in the layout of ``../shared/data``."""
    rng = random.Random(seed)
    write_jsonl(
        root / "banking77" / "banking77.jsonl",
        converted(BANKING, {"train": 10, "test": 5}, rng),
    )
    clinc = converted(
        CLINC, {"train": 10, "validation": 4, "test": 4}, rng, scenario=lambda i: "utility"
    )
    clinc += converted(["oos"], {"train": 4, "validation": 6, "test": 10}, rng)
    write_jsonl(root / "clinc150" / "clinc150.jsonl", clinc)
    write_jsonl(
        root / "snips" / "snips.jsonl",
        converted(SNIPS, {"train": 10, "validation": 2, "test": 2}, rng),
    )
    labels = sorted(MASSIVE_KEPT + MASSIVE_DROPPED)
    counts = {"train": 200, "validation": 10}
    for split, n_kept in counts.items():
        rows = []
        for intent in labels:
            n = n_kept if intent in MASSIVE_KEPT else 12
            for text in utterances(intent, n, rng):
                rows.append(
                    {
                        "id": str(len(rows)),
                        "label": labels.index(intent),
                        "label_text": intent,
                        "text": text + (" v" if split == "validation" else ""),
                        "lang": "en",
                    }
                )
        rng.shuffle(rows)
        write_jsonl(root / "massive_en" / f"{split}.jsonl", rows)
    return root
