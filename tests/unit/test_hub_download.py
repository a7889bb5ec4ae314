"""The hub path downloads one language config and gets the cookbook's rows, in its order.

No network: a local dataset repository in the hub's layout of ``mteb/amazon_massive_intent``
(one config per language with its files under ``{lang}/``, and a ``default`` config made of
all of them) is loaded through ``datasets`` exactly as the hub one would be.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets.config
import pandas as pd
import pytest
from datasets import load_dataset

from helpers import data

LANGS = ("de", "en", "fr")
SPLITS = ("train", "validation", "test")


def write_hub_repo(root: Path) -> Path:
    rng = random.Random(7)
    labels = [f"scen{i}_intent{i}" for i in range(8)]
    sizes = dict(zip(labels, (90, 140, 75, 60, 120, 45, 10, 100), strict=True))
    configs = ["configs:", "- config_name: default", "  data_files:"]
    configs += [f'  - split: {s}\n    path: "*/{s}.jsonl"' for s in SPLITS]
    for lang in LANGS:
        configs += [f"- config_name: {lang}", "  data_files:"]
        configs += [f"  - split: {s}\n    path: {lang}/{s}.jsonl" for s in SPLITS]
        (root / lang).mkdir(parents=True)
        for split in SPLITS:
            rows = [
                {
                    "id": f"{i}",
                    "label": labels.index(label),
                    "label_text": label,
                    "text": f"{lang} {split} {label.replace('_', ' ')} {rng.random():.6f}",
                    "lang": lang,
                }
                for label in labels
                for i in range(sizes[label] if split == "train" else 5)
            ]
            rng.shuffle(rows)  # intents interleaved, as in MASSIVE's files
            with open(root / lang / f"{split}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
    (root / "README.md").write_text("---\n" + "\n".join(configs) + "\n---\n# fixture\n")
    return root


@pytest.fixture
def hub_repo(tmp_path, monkeypatch):
    repo = write_hub_repo(tmp_path / "amazon_massive_intent")
    monkeypatch.setattr(data, "HUB_REPO", str(repo))
    monkeypatch.setattr(data, "_hub_unreachable", lambda: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    return repo


def cookbook(repo: Path, lang: str, min_samples: int, max_samples: int, seed: int):
    """The seed's procedure: the whole dataset, then one language, then the subset."""
    full = load_dataset(str(repo))["train"].to_pandas()
    assert set(full["lang"]) == set(LANGS)
    rows = full[full["lang"] == lang].reset_index(drop=True)
    subset = data.process_labels(rows[data.COLUMNS], min_samples, max_samples, seed)
    return rows, data.split_subset(subset, seed)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_one_language_config_gives_the_cookbooks_rows_in_its_order(hub_repo, lang):
    raw, source = data.load_raw(data.HUB_ID, "train", lang)
    assert source == f"Hugging Face hub: {data.HUB_ID}"
    assert set(raw["lang"]) == {lang}, "only the requested language was loaded"
    rows, expected = cookbook(hub_repo, lang, 50, 100, 42)
    pd.testing.assert_frame_equal(raw, rows)  # same rows, same order

    splits = data.load_splits(data.HUB_ID, lang, min_samples=50, max_samples=100, seed=42)
    for got, want in zip((splits.train, splits.validation, splits.test), expected, strict=True):
        pd.testing.assert_frame_equal(got, want)  # same rows, order and index
    assert splits.sizes() == {"train": 420, "validation": 52, "test": 53}  # 6 intents kept


def test_the_download_stays_in_the_datasets_cache_for_later_lessons(hub_repo, tmp_path):
    data.load_raw(data.HUB_ID, "train", "en")
    cached = list((tmp_path / "cache").rglob("*.arrow"))
    # only the en config was prepared (its three splits), not the 843k-row default
    assert cached and {p.relative_to(tmp_path / "cache").parts[1] for p in cached} == {"en"}
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.arrow")}
    data.load_splits(data.HUB_ID, "en", min_samples=50, max_samples=100)  # lesson 5, say
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.arrow")} == before


def test_a_repository_without_that_config_is_loaded_whole_and_filtered(
    hub_repo, tmp_path, monkeypatch
):
    single = tmp_path / "single"
    single.mkdir()
    for split in SPLITS:
        text = "".join((hub_repo / lang / f"{split}.jsonl").read_text() for lang in LANGS)
        (single / f"{split}.jsonl").write_text(text)
    monkeypatch.setattr(data, "HUB_REPO", str(single))
    splits = data.load_splits(data.HUB_ID, "en", min_samples=50, max_samples=100)
    rows, expected = cookbook(hub_repo, "en", 50, 100, 42)
    pd.testing.assert_frame_equal(splits.train, expected[0])


@pytest.fixture
def one_config_only(hub_repo, monkeypatch):
    """Every ``load_dataset`` call on the hub path; the all-languages config fails the test."""
    import datasets as datasets_module

    calls = []
    real = datasets_module.load_dataset

    def guarded(path, name=None, **kwargs):
        calls.append(name)
        assert name in LANGS, f"the all-languages config was requested ({name=})"
        return real(path, name, **kwargs)

    monkeypatch.setattr(datasets_module, "load_dataset", guarded)
    return calls


def test_every_hub_read_asks_for_one_language(one_config_only):
    """Lesson 1's splits and lesson 7's out-of-scope pool (three splits) read ``en`` only."""
    from helpers import ood

    splits = data.load_splits(data.HUB_ID, "en", min_samples=50, max_samples=100)
    pool = ood.out_of_scope_pool(data.HUB_ID, "en", splits.labels(), splits.train["text"])
    assert one_config_only and set(one_config_only) == {"en"}
    assert len(one_config_only) == 4  # train for the splits; train, validation, test for the pool
    assert len(pool) and set(pool["label_text"]).isdisjoint(splits.labels())


def test_the_guard_catches_an_all_languages_read(one_config_only):
    with pytest.raises(AssertionError, match="all-languages config"):
        data._download(data.HUB_REPO, "train", None)
