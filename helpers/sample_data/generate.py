"""Generate the bundled offline sample dataset (``massive_sample/``), deterministically.

The sample mimics the schema of ``mteb/amazon_massive_intent`` (``id``, ``label``,
``label_text``, ``text``, ``lang``) so the tutorials run without network access. Every
utterance is produced here from this project's own templates (``tables_*.py``); nothing is
copied from MASSIVE or any other dataset.

Usage::

    python -m helpers.sample_data.generate            # rewrite helpers/sample_data/massive_sample
    python -m helpers.sample_data.generate --out DIR  # write somewhere else

Same code, same files: the output is byte-identical on every run (standard library only).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

from . import tables_de, tables_en, tables_fr

SEED = 20240611
TABLES = {"en": tables_en, "fr": tables_fr, "de": tables_de}
SPLITS = ("train", "validation", "test")
DEFAULT_OUT = Path(__file__).resolve().parent / "massive_sample"
EVAL_DIVISOR = 6  # validation and test each get round(train_rows / 6) rows per intent
PREFIX_RATE, SUFFIX_RATE, LOWERCASE_RATE = 0.12, 0.06, 0.8
ZIPF_OFFSET = 4  # template k of an intent is drawn with weight 1 / (k + 4): a long tail

_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_SLOT = re.compile(r"\{(\w+)\}")


def expand(template: str, slots: dict[str, list[str]], rng: random.Random) -> str:
    """Fill ``[a|b]`` choices (``[a]`` = optional) and ``{slot}`` values, recursively."""
    while match := _CHOICE.search(template):
        options = match.group(1).split("|")
        if len(options) == 1:
            options.append("")
        template = template[: match.start()] + rng.choice(options) + template[match.end() :]
    return _SLOT.sub(lambda m: expand(rng.choice(slots[m.group(1)]), slots, rng), template)


def add_typo(text: str, rng: random.Random) -> str:
    """Swap, drop or double one letter inside one word of 4+ letters (if there is one)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w, k = words[i], rng.randrange(1, len(words[i]) - 1)
    op = rng.choice(("swap", "drop", "double"))
    if op == "swap":
        w = w[:k] + w[k + 1] + w[k] + w[k + 2 :]
    elif op == "drop":
        w = w[:k] + w[k + 1 :]
    else:
        w = w[:k] + w[k] + w[k:]
    words[i] = w
    return " ".join(words)


def decorate(text: str, style: dict, rng: random.Random) -> str:
    """Spoken-assistant noise: typos, wake words/fillers, punctuation and casing."""
    question = text.split(" ")[0].lower() in style["question_words"]
    if rng.random() < style["typo_rate"]:
        text = add_typo(text, rng)
    if rng.random() < PREFIX_RATE:
        sep = ", " if rng.random() < 0.35 else " "
        text = rng.choice(style["prefixes"]) + sep + text[0].lower() + text[1:]
    if rng.random() < SUFFIX_RATE:
        text += rng.choice(style["suffixes"])
    r = rng.random()
    if r < (0.25 if question else 0.08):
        text += "?" if question else "."
    elif r > 0.98 and not question:
        text += "!"
    if rng.random() < LOWERCASE_RATE:
        return text.lower()
    text = text[0].upper() + text[1:]
    return re.sub(r"\bi\b", "I", text) if style.get("capital_i") else text


def _zipf(n: int) -> list[float]:
    """Cumulative weights 1/(rank + ZIPF_OFFSET): early templates are common, late ones rare."""
    total, cum = 0.0, []
    for rank in range(n):
        total += 1 / (rank + ZIPF_OFFSET)
        cum.append(total)
    return cum


def dedupe_key(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form used to drop duplicates."""
    return " ".join(re.sub(r"[\W_]+", " ", text.lower()).split())


def generate_intent(table, intent: str, taken: set[str], rng: random.Random) -> dict:
    """``{split: [texts]}`` for one intent; ``taken`` holds the language's dedupe keys."""
    n_train, templates = table.INTENTS[intent]
    n_eval = round(n_train / EVAL_DIVISOR)
    needed = n_train + 2 * n_eval
    pairs = [tpls for pair, tpls in table.AMBIGUOUS.items() if intent in pair]
    texts: list[str] = []
    for _ in range(needed * 60):
        ambiguous = pairs and rng.random() < table.STYLE["ambiguous_rate"]
        pool = rng.choice(pairs) if ambiguous else templates
        template = rng.choices(pool, cum_weights=_zipf(len(pool)))[0]
        text = " ".join(expand(template, table.SLOTS, rng).split())
        for pattern, replacement in table.STYLE.get("fixes", ()):
            text = re.sub(pattern, replacement, text)
        text = decorate(text, table.STYLE, rng)
        key = dedupe_key(text)
        if key not in taken:
            taken.add(key)
            texts.append(text)
            if len(texts) == needed:
                return {
                    "test": texts[:n_eval],
                    "validation": texts[n_eval : 2 * n_eval],
                    "train": texts[2 * n_eval :],
                }
    raise RuntimeError(f"{intent}: only {len(texts)} unique texts of {needed}; add variety")


def build_rows() -> dict[str, list[dict]]:
    """All rows per split: languages in ``TABLES`` order, rows shuffled within a language."""
    labels = sorted({intent for table in TABLES.values() for intent in table.INTENTS})
    rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for lang, table in TABLES.items():
        taken: set[str] = set()
        per_split: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
        for intent in table.INTENTS:
            rng = random.Random(f"{SEED}:{lang}:{intent}")
            for split, texts in generate_intent(table, intent, taken, rng).items():
                per_split[split] += [(intent, text) for text in texts]
        for split in SPLITS:
            items = per_split[split]
            random.Random(f"{SEED}:{lang}:{split}").shuffle(items)
            rows[split] += [
                {
                    "id": f"{lang}-{split}-{i:06d}",
                    "label": labels.index(intent),
                    "label_text": intent,
                    "text": text,
                    "lang": lang,
                }
                for i, (intent, text) in enumerate(items)
            ]
    return rows


def render_readme(rows: dict[str, list[dict]]) -> str:
    counts = Counter((r["lang"], r["label_text"], s) for s, rs in rows.items() for r in rs)
    labels = sorted({r["label_text"]: r["label"] for rs in rows.values() for r in rs}.items())
    langs = list(TABLES)
    lines = [
        "# massive_sample: small offline intent dataset (generated by this project)",
        "",
        "A small, synthetic stand-in for `mteb/amazon_massive_intent`, bundled so the tutorial",
        "notebooks and tests run offline. Same schema: one JSON object per line with `id`,",
        "`label`, `label_text` (a MASSIVE intent name), `text` and `lang`; all languages share",
        "`train.jsonl`, `validation.jsonl` and `test.jsonl`, as in MASSIVE.",
        "",
        "**Every utterance was generated by this project** from its own templates and slot",
        "values (`helpers/sample_data/tables_{en,fr,de}.py`); nothing is copied from MASSIVE,",
        "SNIPS, CLINC, Banking77 or any other dataset. Scores on it are **not comparable** with",
        "results on the real MASSIVE data.",
        "",
        "Design: varied phrasings per intent, realistic slot values, fillers and wake words,",
        "casing and punctuation variation, a few deterministic typos, deliberately confusable",
        "intent pairs plus a small share of genuinely ambiguous utterances (so a classifier does",
        "not reach 100 %), and some intents with fewer than 200 training rows in each language",
        "so that the cookbook's `>= 200 rows` filter visibly drops them. Duplicates (ignoring",
        "case, punctuation and spacing) are removed within each language, across all splits.",
        "",
        "## Regenerate",
        "",
        "```bash",
        "python -m helpers.sample_data.generate            # rewrites this folder",
        "python -m helpers.sample_data.generate --out DIR  # writes elsewhere",
        "```",
        "",
        "The generator uses only the standard library and a fixed seed: the output is",
        "byte-identical on every run (`tests/test_sample_data.py` checks this). This README is",
        "written by the generator too: edit `generate.py` or `tables_*.py`, not this file.",
        "",
        "## Rows per split and language",
        "",
        "| lang | " + " | ".join(SPLITS) + " | intents | with >= 200 train rows |",
        "| --- |" + " ---: |" * (len(SPLITS) + 2),
    ]
    for lang in langs:
        n = [sum(v for (la, _, s), v in counts.items() if la == lang and s == sp) for sp in SPLITS]
        train = [v for (la, _, s), v in counts.items() if la == lang and s == "train"]
        n += [len(train), sum(v >= 200 for v in train)]
        lines.append(f"| {lang} | " + " | ".join(str(x) for x in n) + " |")
    total = [len(rows[split]) for split in SPLITS]
    lines += ["| all | " + " | ".join(str(x) for x in total) + " | | |", ""]
    lines += [
        "## Intents (rows as train / validation / test)",
        "",
        "`label` is the index of the intent in the sorted list of all intent names below.",
        "",
        "| label | label_text | " + " | ".join(langs) + " |",
        "| ---: | --- |" + " --- |" * len(langs),
    ]
    for name, label in labels:
        cells = []
        for lang in langs:
            n = [counts[(lang, name, split)] for split in SPLITS]
            cells.append(" / ".join(str(x) for x in n) if n[0] else "-")
        lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "## License", "", "MIT, the same license as this project.", ""]
    return "\n".join(lines)


def generate(out_dir: str | Path = DEFAULT_OUT) -> list[Path]:
    """Write ``{train,validation,test}.jsonl`` and ``README.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = build_rows()
    written = []
    for split in SPLITS:
        path = out / f"{split}.jsonl"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for row in rows[split]:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        written.append(path)
    readme = out / "README.md"
    readme.write_text(render_readme(rows), encoding="utf-8", newline="\n")
    return written + [readme]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
