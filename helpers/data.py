"""Load intent data and build the cookbook's subset, exactly as the seed notebook does.

The seed (Mistral's intent-classification cookbook) keeps the English rows of the
``mteb/amazon_massive_intent`` *train* split, drops intents with fewer than 200 rows, caps
each intent at 600 rows (``random_state=42``) and splits 80/10/10, stratified
(``random_state=42``). On the real data that gives 16 intents and 5,313 / 664 / 665 rows.
:func:`load_splits` reproduces that procedure for any source in the same schema.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from helpers.fileio import atomic_write
from helpers.hub import hub_offline

HUB_ID = "mteb/amazon_massive_intent"
HUB_REPO = HUB_ID  # where the hub id is downloaded from (tests point it at a local copy)
SAMPLE = "sample"
SPLITS = ("train", "validation", "test")
COLUMNS = ["text", "label_text"]


class DataSourceError(ValueError):
    """The data source cannot be read; the message says what and where."""


@dataclass
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    source: str  # what was actually loaded, e.g. "bundled sample (offline fallback)"
    raw_counts: pd.Series | None = None  # rows per intent in the language, before filtering

    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in SPLITS}

    def labels(self) -> list[str]:
        return sorted(self.train["label_text"].unique())


def sample_dir() -> Path:
    """The offline sample shipped inside the package (works from a wheel too)."""
    return Path(str(resources.files("helpers") / "sample_data" / "massive_sample"))


def scenario_of(label_text: str) -> str:
    """MASSIVE intents are named ``<scenario>_<intent>``: ``iot_hue_lightoff`` → ``iot``."""
    return label_text.split("_", 1)[0]


def load_raw(
    data_source: str = HUB_ID, split: str = "train", lang: str | None = None
) -> tuple[pd.DataFrame, str]:
    """One split of the source as a DataFrame in the mteb schema, plus a description.

    ``data_source`` is the hub id, ``"sample"`` (the bundled offline sample), or a local
    folder with ``train/validation/test`` as ``.jsonl``/``.parquet``, or a single such file
    (its ``split`` column is used when present, else all rows count as ``train``).
    From the hub, ``lang`` downloads only that language's config (see :func:`_download`);
    the other sources are returned whole. When the hub cannot be reached, the hub id falls
    back to the bundled sample and says so.
    """
    if data_source == SAMPLE:
        return _read_folder(sample_dir(), split), "bundled offline sample"
    if data_source == HUB_ID:
        return _load_hub(split, lang)
    path = Path(data_source).expanduser()
    if path.is_dir():
        return _read_folder(path, split), f"local folder {path}"
    if path.is_file():
        df = _read_table(path)
        if "split" in df.columns:
            df = df[df["split"] == split]
        elif split != "train":
            df = df.iloc[0:0]
        return df.reset_index(drop=True), f"local file {path}"
    raise DataSourceError(
        f"data_source={data_source!r} is neither {HUB_ID!r}, {SAMPLE!r}, "
        "nor an existing folder or file"
    )


def _load_hub(split: str, lang: str | None = None) -> tuple[pd.DataFrame, str]:
    reason = None
    if hub_offline(datasets=True):
        reason = "HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set"
    elif (unreachable := _hub_unreachable()) is not None:
        reason = unreachable
    else:
        try:
            return _download(HUB_REPO, split, lang), f"Hugging Face hub: {HUB_ID}"
        except Exception as exc:  # any network/hub failure: fall back, loudly
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    banner = "!" * 78
    print(
        f"{banner}\n"
        f"OFFLINE FALLBACK: could not load {HUB_ID!r} from the Hugging Face hub\n"
        f"({reason}).\n"
        "Using the small bundled sample instead. Its numbers are NOT comparable with\n"
        "the cookbook's MASSIVE results. Set data_source to a local copy to use real data.\n"
        f"{banner}"
    )
    return _read_folder(sample_dir(), split), "bundled sample (offline fallback for the hub)"


def _download(repo: str, split: str, lang: str | None) -> pd.DataFrame:
    """``split`` of the hub dataset, only the ``lang`` config when there is one.

    ``mteb/amazon_massive_intent`` has one config per language (``en``, ``fr``, ... about
    16.5k rows each, its files under ``{lang}/``) and a ``default`` config whose data files
    are all of those files (843k rows). The cookbook loads ``default`` and keeps
    ``lang == "en"``: those are the rows of the ``en`` files, in file order, so loading the
    ``en`` config gives the same rows in the same order for a fiftieth of the download
    (``tests/unit/test_hub_download.py`` checks this on a copy in the hub's layout).
    ``datasets`` keeps the download in its cache (``HF_DATASETS_CACHE``), so later lessons
    in the same runtime reuse it. A repository without that config is loaded whole.
    """
    from datasets import get_dataset_config_names, load_dataset

    configs = get_dataset_config_names(repo) if lang else []
    if lang in configs:
        return load_dataset(repo, lang, split=split).to_pandas()
    return load_dataset(repo, split=split).to_pandas()


def _hub_unreachable(timeout: float = 5.0) -> str | None:
    """Why the hub cannot be reached, or None; fails in seconds, not the library's retries."""
    import httpx

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        httpx.head(endpoint, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"{endpoint} unreachable: {type(exc).__name__}"
    return None


def _read_folder(folder: Path, split: str) -> pd.DataFrame:
    for suffix in (".jsonl", ".parquet"):
        path = folder / f"{split}{suffix}"
        if path.exists():
            return _read_table(path)
    raise DataSourceError(f"{folder}: no {split}.jsonl or {split}.parquet in this folder")


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix in (".jsonl", ".json"):
            df = pd.read_json(path, lines=True, dtype=False)
        else:
            raise DataSourceError(f"{path}: unsupported file type (use .jsonl or .parquet)")
    except DataSourceError:
        raise
    except Exception as exc:
        raise DataSourceError(f"{path}: cannot be read as {path.suffix[1:]}: {exc}") from exc
    missing = [c for c in ("text", "label_text") if c not in df.columns]
    if missing:
        raise DataSourceError(
            f"{path}: missing column(s) {', '.join(missing)}; expected the mteb schema "
            "(id, label, label_text, text, lang)"
        )
    return df


def process_labels(
    df: pd.DataFrame, min_samples: int = 200, max_samples: int = 600, random_state: int = 42
) -> pd.DataFrame:
    """The seed's ``process_labels``: drop rare intents, cap each intent (same row order)."""
    label_counts = df["label_text"].value_counts()
    labels_to_keep = label_counts[label_counts >= min_samples].index
    df = df[df["label_text"].isin(labels_to_keep)]
    parts = []
    for label in labels_to_keep:
        rows = df[df["label_text"] == label]
        parts.append(rows.sample(n=min(len(rows), max_samples), random_state=random_state))
    if not parts:
        return df.iloc[0:0]
    return pd.concat(parts)


def split_subset(df: pd.DataFrame, random_state: int = 42):
    """The seed's 80/10/10 stratified split: returns ``(train, validation, test)``."""
    train_df, temp_df = train_test_split(
        df, test_size=0.2, random_state=random_state, stratify=df["label_text"]
    )
    validation_df, test_df = train_test_split(
        temp_df, test_size=0.5, random_state=random_state, stratify=temp_df["label_text"]
    )
    return train_df, validation_df, test_df


def load_splits(
    data_source: str = HUB_ID,
    lang: str = "en",
    min_samples: int = 200,
    max_samples: int = 600,
    seed: int = 42,
) -> Splits:
    """Load, keep one language, filter and cap intents, split 80/10/10 — the seed's procedure.

    With ``seed=42`` (the default) the row selection and split are identical to the seed's.
    """
    raw, source = load_raw(data_source, "train", lang)
    if "lang" in raw.columns:
        langs = sorted(raw["lang"].dropna().unique())
        raw = raw[raw["lang"] == lang].reset_index(drop=True)
        if raw.empty:
            raise DataSourceError(
                f"{source}: no rows with lang={lang!r}; languages present: {', '.join(langs)}"
            )
    subset = process_labels(raw[COLUMNS], min_samples, max_samples, random_state=seed)
    if subset["label_text"].nunique() < 2:
        counts = raw["label_text"].value_counts()
        raise DataSourceError(
            f"{source}: only {subset['label_text'].nunique()} intent(s) have at least "
            f"min_samples={min_samples} training rows (largest: "
            f"{counts.max() if len(counts) else 0}); lower min_samples"
        )
    train, validation, test = split_subset(subset, random_state=seed)
    return Splits(train, validation, test, source, raw["label_text"].value_counts())


def save_splits(splits: Splits, work_dir: str | os.PathLike) -> dict[str, Path]:
    """Write the splits as ``{work_dir}/splits/{split}.parquet`` (index kept for traceability)."""
    out = Path(work_dir) / "splits"
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SPLITS:
        path = out / f"{name}.parquet"
        atomic_write(path, getattr(splits, name).to_parquet())
        paths[name] = path
    (out / "SOURCE.txt").write_text(splits.source + "\n", encoding="utf-8")
    return paths


def load_saved_splits(work_dir: str | os.PathLike, produced_by: str = "01_explore_data") -> Splits:
    """Read the splits notebook 01 wrote; a clear error naming that notebook if they are missing."""
    folder = Path(work_dir) / "splits"
    missing = [name for name in SPLITS if not (folder / f"{name}.parquet").exists()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: missing {', '.join(m + '.parquet' for m in missing)}. "
            f"Run notebooks/{produced_by}.ipynb first with the same work_dir."
        )
    frames = {name: pd.read_parquet(folder / f"{name}.parquet") for name in SPLITS}
    source_file = folder / "SOURCE.txt"
    source = source_file.read_text(encoding="utf-8").strip() if source_file.exists() else "?"
    return Splits(frames["train"], frames["validation"], frames["test"], source)


def examples_per_intent(df: pd.DataFrame, n: int = 3, seed: int = 42) -> pd.DataFrame:
    """``n`` random utterances per intent, one row per intent."""
    rows = []
    for label, group in df.groupby("label_text", sort=True):
        picked = group.sample(n=min(n, len(group)), random_state=seed)["text"].tolist()
        rows.append({"label_text": label, "rows": len(group), "examples": " | ".join(picked)})
    return pd.DataFrame(rows).set_index("label_text")


def check_examples_per_intent(value) -> int:
    """The shared parameter ``examples_per_intent`` as an int (0 = all), or a clear ValueError.

    Allowed: ``0`` or ``None`` (keep every training example) or a positive whole number.
    """
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(
            f"examples_per_intent={value!r}: must be a whole number of training "
            "examples per intent (0 or None = all), not "
            f"{type(value).__name__}"
        )
    if value < 0:
        raise ValueError(
            f"examples_per_intent={value}: must be 0 (all) or a positive number of "
            "training examples per intent"
        )
    return int(value)


def subsample_per_intent(
    df: pd.DataFrame, examples_per_intent: int | None, seed: int = 42
) -> pd.DataFrame:
    """At most ``examples_per_intent`` random rows per intent (0/None: all rows), drawn with
    ``seed``. Deterministic and nested: with the same seed, the 8 rows kept per intent are among
    the 16 kept with ``examples_per_intent=16``, so a learning curve only ever adds data.
    The rows keep their original order."""
    n = check_examples_per_intent(examples_per_intent)
    if n == 0:
        return df
    rng = np.random.default_rng(seed)
    labels = df["label_text"].to_numpy()
    keep = []
    for label in sorted(set(labels)):
        rows = np.flatnonzero(labels == label)
        keep.append(rows[rng.permutation(len(rows))[:n]])
    return df.iloc[np.sort(np.concatenate(keep))]


def duplicate_report(splits: Splits) -> pd.DataFrame:
    """Exact duplicates (case- and space-insensitive) within and across splits.

    A text in both train and test is *leakage*: the test score then partly measures memory.
    """
    frames = []
    for name in SPLITS:
        df = getattr(splits, name)
        frames.append(
            pd.DataFrame(
                {
                    "split": name,
                    "key": df["text"].str.lower().str.split().str.join(" "),
                    "text": df["text"],
                    "label_text": df["label_text"],
                }
            )
        )
    all_rows = pd.concat(frames, ignore_index=True)
    groups = all_rows.groupby("key", sort=True)
    rows = []
    for _, group in groups:
        if len(group) < 2:
            continue
        in_splits = sorted(set(group["split"]), key=SPLITS.index)
        rows.append(
            {
                "text": group["text"].iloc[0],
                "copies": len(group),
                "splits": "+".join(in_splits),
                "kind": "across splits" if len(in_splits) > 1 else "within " + in_splits[0],
                "labels": "/".join(sorted(set(group["label_text"]))),
            }
        )
    return pd.DataFrame(rows, columns=["text", "copies", "splits", "kind", "labels"])


def normalise_text(text: str) -> str:
    """Lowercase, punctuation replaced by spaces, runs of spaces collapsed."""
    import re

    return " ".join(re.sub(r"[^\w\s]", " ", str(text).lower()).split())


LABEL_CONFLICT_COLUMNS = ["text", "rows", "intents", "best_answer", "unavoidable_errors"]


def label_conflicts(df: pd.DataFrame) -> pd.DataFrame:
    """Texts of ``df`` found under more than one intent, compared after :func:`normalise_text`.

    One row per such text, the costliest first: ``text`` (normalised), ``rows`` (its copies),
    ``intents`` (each intent with its count, most frequent first), ``best_answer`` (the most
    frequent intent, alphabetically first on a tie) and ``unavoidable_errors`` (``rows`` minus
    the count of ``best_answer``). A classifier gives one answer per text, so the best it can do
    is always answer ``best_answer``; the other copies are wrong whatever the model.
    """
    frame = pd.DataFrame(
        {"key": df["text"].map(normalise_text).to_numpy(), "label": df["label_text"].to_numpy()}
    )
    frame = frame[frame.groupby("key")["label"].transform("nunique") > 1]
    rows = []
    for key, labels in frame.groupby("key", sort=True)["label"]:
        counts = labels.value_counts().sort_index().sort_values(ascending=False, kind="stable")
        rows.append(
            {
                "text": key,
                "rows": int(counts.sum()),
                "intents": ", ".join(f"{label}: {n}" for label, n in counts.items()),
                "best_answer": counts.index[0],
                "unavoidable_errors": int(counts.sum() - counts.iloc[0]),
            }
        )
    table = pd.DataFrame(rows, columns=LABEL_CONFLICT_COLUMNS)
    return table.sort_values(
        ["unavoidable_errors", "rows", "text"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)


def accuracy_ceiling(df: pd.DataFrame) -> float:
    """The best accuracy any classifier can reach on ``df`` (its *ceiling*), between 0 and 1.

    ``1 - (sum over the texts of label_conflicts(df) of their unavoidable errors) / len(df)``:
    a text found under several intents (after :func:`normalise_text`) is right at best for
    its most frequent intent. Only identical texts count; utterances that differ in a word
    but are just as ambiguous are not seen, so the true ceiling can be lower.
    """
    if len(df) == 0:
        raise ValueError("no rows: the ceiling of an empty split is undefined")
    return 1 - int(label_conflicts(df)["unavoidable_errors"].sum()) / len(df)


def near_duplicates(splits: Splits, check: Sequence[str] = ("validation", "test")) -> pd.DataFrame:
    """For every utterance of the ``check`` splits, its most similar training utterance.

    Similarity is the cosine between character 3-5-gram TF-IDF vectors of the normalised texts
    (:func:`normalise_text`): 1.0 for texts equal after normalising, about 0.9 when one word or a
    few letters differ. ``jaccard`` is the token overlap of the two normalised texts (shared words
    / all words), a second, easier-to-read measure.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    train = splits.train.reset_index(drop=True)
    train_norm = train["text"].map(normalise_text)
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    train_vec = vectorizer.fit_transform(train_norm)
    frames = []
    for name in check:
        df = getattr(splits, name).reset_index(drop=True)
        norm = df["text"].map(normalise_text)
        sims = vectorizer.transform(norm) @ train_vec.T
        best = np.asarray(sims.argmax(axis=1)).ravel()
        score = np.asarray(sims.max(axis=1).todense()).ravel()
        nearest_norm = train_norm.iloc[best].to_numpy()

        def jaccard(a: str, b: str) -> float:
            sa, sb = set(a.split()), set(b.split())
            return len(sa & sb) / len(sa | sb) if sa | sb else 1.0

        frames.append(
            pd.DataFrame(
                {
                    "split": name,
                    "text": df["text"],
                    "label_text": df["label_text"],
                    "nearest_train_text": train["text"].iloc[best].to_numpy(),
                    "nearest_train_label": train["label_text"].iloc[best].to_numpy(),
                    "similarity": np.round(score, 4),
                    "jaccard": [
                        round(jaccard(a, b), 4) for a, b in zip(norm, nearest_norm, strict=True)
                    ],
                    "equal_after_normalising": norm.to_numpy() == nearest_norm,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
