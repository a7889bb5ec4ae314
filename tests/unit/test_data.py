import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from helpers import data


def seed_procedure(train_df: pd.DataFrame):
    """The cookbook's code, verbatim in logic, as the reference for exactness."""

    def process_labels(df, min_samples=200, max_samples=600):
        label_counts = df["label_text"].value_counts()
        labels_to_keep = label_counts[label_counts >= min_samples].index
        df = df[df["label_text"].isin(labels_to_keep)]
        balanced_df = pd.DataFrame()
        for label in labels_to_keep:
            label_samples = df[df["label_text"] == label].sample(
                n=min(len(df[df["label_text"] == label]), max_samples), random_state=42
            )
            balanced_df = pd.concat([balanced_df, label_samples])
        return balanced_df

    train_df = process_labels(train_df)
    train_df, temp_df = train_test_split(
        train_df, test_size=0.2, random_state=42, stratify=train_df["label_text"]
    )
    validation_df, test_df = train_test_split(
        temp_df, test_size=0.5, random_state=42, stratify=temp_df["label_text"]
    )
    return train_df, validation_df, test_df


def test_seed_procedure_counts(massive_like):
    splits = data.load_splits(str(massive_like), "en")
    assert splits.sizes() == {"train": 5313, "validation": 664, "test": 665}
    assert len(splits.labels()) == 16
    assert not {"rare_one", "rare_two", "rare_three"} & set(splits.labels())
    assert splits.raw_counts["rare_two"] == 199


def test_same_rows_and_split_as_the_seed(massive_like):
    raw = pd.read_json(massive_like / "train.jsonl", lines=True)
    raw = raw[raw["lang"] == "en"].reset_index(drop=True)[["text", "label_text"]]
    expected = seed_procedure(raw)
    splits = data.load_splits(str(massive_like), "en")
    for got, want in zip((splits.train, splits.validation, splits.test), expected, strict=True):
        assert list(got.index) == list(want.index)
        assert list(got["text"]) == list(want["text"])


def test_split_is_stratified(massive_like):
    splits = data.load_splits(str(massive_like), "en")
    train_share = splits.train["label_text"].value_counts(normalize=True)
    test_share = splits.test["label_text"].value_counts(normalize=True)
    assert (train_share - test_share).abs().max() < 0.005


def test_lang_and_caps_are_parameters(massive_like):
    splits = data.load_splits(str(massive_like), "fr", min_samples=100, max_samples=150, seed=7)
    assert len(splits.labels()) == 18  # rare_three (40) is still dropped
    assert splits.train["label_text"].value_counts().max() <= 120


def test_single_file_with_split_column(tmp_path):
    rows = [
        {
            "text": f"t{i} {lab}",
            "label_text": lab,
            "split": "train" if i % 5 else "test",
            "lang": "en",
        }
        for lab in ("a_x", "b_y")
        for i in range(300)
    ]
    path = tmp_path / "data.jsonl"
    pd.DataFrame(rows).to_json(path, orient="records", lines=True)
    raw, source = data.load_raw(str(path))
    assert len(raw) == 480 and source.startswith("local file")
    assert data.load_splits(str(path)).sizes()["train"] == 384


def test_parquet_folder(tmp_path, massive_like):
    for split in data.SPLITS:
        pd.read_json(massive_like / f"{split}.jsonl", lines=True).to_parquet(
            tmp_path / f"{split}.parquet"
        )
    assert data.load_splits(str(tmp_path)).sizes()["train"] == 5313


def test_sample_source():
    splits = data.load_splits("sample")
    assert splits.source == "bundled offline sample"
    assert len(splits.labels()) >= 12
    assert splits.raw_counts.min() < 200  # the filter visibly drops intents


def test_hub_falls_back_to_sample_loudly(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    splits = data.load_splits(data.HUB_ID)
    assert "offline fallback" in splits.source
    assert "OFFLINE FALLBACK" in capsys.readouterr().out
    assert splits.sizes() == data.load_splits("sample").sizes()


@pytest.mark.parametrize(
    "source, message",
    [("/nonexistent/folder", "neither"), ("{tmp}", "no train.jsonl or train.parquet")],
)
def test_bad_sources_say_what_and_where(tmp_path, source, message):
    with pytest.raises(data.DataSourceError, match=message):
        data.load_splits(source.format(tmp=tmp_path))


def test_missing_columns_and_unknown_language(tmp_path, massive_like):
    (tmp_path / "train.jsonl").write_text('{"utterance": "hi", "intent": "x"}\n')
    with pytest.raises(data.DataSourceError, match="missing column.*label_text"):
        data.load_splits(str(tmp_path))
    with pytest.raises(data.DataSourceError, match="no rows with lang='xx'.*en, fr"):
        data.load_splits(str(massive_like), "xx")


def test_saved_splits_round_trip_and_missing_error(tmp_path, massive_like):
    splits = data.load_splits(str(massive_like))
    data.save_splits(splits, tmp_path)
    again = data.load_saved_splits(tmp_path)
    pd.testing.assert_frame_equal(again.test, splits.test)
    with pytest.raises(FileNotFoundError, match="01_explore_data"):
        data.load_saved_splits(tmp_path / "empty")


def test_duplicate_report_finds_leakage():
    df = pd.DataFrame({"text": ["Hello there", "b"], "label_text": ["x", "y"]})
    test = pd.DataFrame({"text": ["hello  THERE"], "label_text": ["x"]})
    report = data.duplicate_report(data.Splits(df, df.iloc[0:0], test, "t"))
    assert report.to_dict("records") == [
        {
            "text": "Hello there",
            "copies": 2,
            "splits": "train+test",
            "kind": "across splits",
            "labels": "x",
        }
    ]


def test_unreachable_hub_falls_back_within_seconds(monkeypatch, capsys):
    import socket
    import time

    with socket.socket() as s:  # a local port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    splits = data.load_splits(data.HUB_ID)
    assert time.monotonic() - start < 10
    assert "offline fallback" in splits.source
    assert f"http://127.0.0.1:{port} unreachable: ConnectError" in capsys.readouterr().out


def test_label_conflicts_and_accuracy_ceiling_on_a_hand_made_split():
    df = pd.DataFrame(
        {
            "text": ["Email from Tom", "email from tom.", "EMAIL  FROM TOM", "play jazz",
                     "Play jazz!", "hi", "hi"],
            "label_text": ["email_query", "email_sendemail", "email_query", "play_radio",
                           "play_music", "greet", "greet"],
        }
    )  # fmt: skip
    assert data.label_conflicts(df).to_dict("records") == [
        {
            "text": "email from tom",
            "rows": 3,
            "intents": "email_query: 2, email_sendemail: 1",
            "best_answer": "email_query",
            "unavoidable_errors": 1,
        },
        {
            "text": "play jazz",
            "rows": 2,
            "intents": "play_music: 1, play_radio: 1",
            "best_answer": "play_music",  # a tie: the first alphabetically
            "unavoidable_errors": 1,
        },
    ]
    # 7 rows, 2 of them wrong whatever a model answers ("hi" twice as greet costs nothing)
    assert data.accuracy_ceiling(df) == pytest.approx(5 / 7)
    same_label = df[df["text"].isin(["hi"])]
    assert data.label_conflicts(same_label).empty and data.accuracy_ceiling(same_label) == 1.0
    with pytest.raises(ValueError, match="empty"):
        data.accuracy_ceiling(df.iloc[0:0])
