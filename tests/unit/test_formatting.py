import json

import pandas as pd
import pytest

from helpers import formatting
from helpers.formatting import validate_training_files

GOOD = [
    {"text": "wake me up at six", "labels": {"intent": "alarm_set"}},
    {"text": "is it raining", "labels": {"intent": "weather_query"}},
]


def write(path, lines):
    path.write_text(
        "".join(x if isinstance(x, str) else json.dumps(x) + "\n" for x in lines), encoding="utf-8"
    )
    return path


def only_error(report):
    assert len(report.errors) == 1, report.summary()
    return str(report.errors[0])


def test_dataset_to_jsonl_writes_the_cookbook_format(tmp_path):
    df = pd.DataFrame({"text": ["a b", "c"], "label_text": ["x", "y"]})
    path = tmp_path / "train.jsonl"
    assert formatting.dataset_to_jsonl(df, path) == 2
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"text": "a b", "labels": {"intent": "x"}}
    assert validate_training_files(path).ok


def test_multi_target_and_multi_label_files_are_valid(tmp_path):
    df = pd.DataFrame(
        {
            "text": ["a", "b", "c"],
            "label_text": ["x_1", "y_2", "x_3"],
            "scenario": ["x", "y", "x"],
            "tags": [["p"], ["p", "q"], ["q"]],
        }
    )
    path = tmp_path / "multi.jsonl"
    formatting.dataset_to_jsonl(
        df, path, label_columns={"intent": "label_text", "scenario": "scenario", "tags": "tags"}
    )
    report = validate_training_files(path)
    assert report.ok, report.summary()
    assert report.targets["tags"].multi_label and not report.targets["intent"].multi_label
    assert report.targets["tags"].labels == ["p", "q"]


@pytest.mark.parametrize(
    "bad_line, expected",
    [
        ('{"text": "x", "labels": {"intent": "alarm_set"},}\n', "line 3: invalid JSON"),
        ('["just", "a", "list"]\n', "line 3: expected a JSON object, got list"),
        ({"labels": {"intent": "alarm_set"}}, "line 3, field 'text': missing"),
        ({"text": "   ", "labels": {"intent": "alarm_set"}}, "line 3, field 'text': is empty"),
        ({"text": 42, "labels": {"intent": "alarm_set"}}, "line 3, field 'text': must be a string"),
        ({"text": "x"}, "line 3, field 'labels': missing"),
        ({"text": "x", "labels": ["alarm_set"]}, "line 3, field 'labels': must be an object"),
        (
            {"text": "x", "labels": {"intent": 7}},
            "line 3, field 'labels.intent': must be a string or a list of strings, got int",
        ),
        (
            {"text": "x", "labels": {"intent": ["a", 1]}},
            "line 3, field 'labels.intent': label list must hold non-empty strings",
        ),
        (
            {"text": "x", "labels": {"intent": []}},
            "line 3, field 'labels.intent': label list is empty",
        ),
        ({"text": "x", "labels": {}}, "line 3, field 'labels': has no target"),
        (
            {"text": "x", "labels": {"intent": "alarm_set", "extra": "a"}},
            "line 1, field 'labels.extra': missing (other examples have it)",
        ),
        (
            {"text": "x", "labels": {"intent": ["alarm_set"]}},
            "line 3, field 'labels.intent': is a list here but a string at train.jsonl line 1",
        ),
    ],
)
def test_each_error_names_file_line_and_field(tmp_path, bad_line, expected):
    path = write(tmp_path / "train.jsonl", [*GOOD, bad_line])
    report = validate_training_files(path)
    assert any(
        str(p).startswith("train.jsonl, " + expected.split(":")[0])
        and expected.split(": ", 1)[1] in str(p)
        for p in report.errors
    ), report.summary()


def test_non_utf8_bytes(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_bytes(
        json.dumps(GOOD[0]).encode() + b"\n" + b'{"text": "caf\xe9", "labels": '
        b'{"intent": "x"}}\n' + json.dumps(GOOD[1]).encode() + b"\n"
    )
    assert only_error(validate_training_files(path)) == (
        "train.jsonl, line 2: not valid UTF-8 (byte 0xe9 at column 14); save the file as UTF-8"
    )


def test_trailing_partial_line(tmp_path):
    path = write(tmp_path / "train.jsonl", [*GOOD, '{"text": "set an alarm for'])
    message = only_error(validate_training_files(path))
    assert message.startswith("train.jsonl, line 3: the last line is incomplete")


def test_single_label_target(tmp_path):
    same = {"text": "b", "labels": {"intent": "alarm_set"}}
    path = write(tmp_path / "train.jsonl", [GOOD[0], same])
    assert "needs at least two distinct labels" in only_error(validate_training_files(path))


def test_validation_label_unseen_in_training(tmp_path):
    train = write(tmp_path / "train.jsonl", GOOD)
    valid = write(
        tmp_path / "validation.jsonl",
        [GOOD[1], {"text": "play jazz", "labels": {"intent": "play_music"}}],
    )
    report = validate_training_files(train, valid)
    assert only_error(report) == (
        "validation.jsonl, line 2, field 'labels.intent': "
        "label 'play_music' never appears in training"
    )


def test_duplicates_across_splits_are_a_warning(tmp_path):
    train = write(tmp_path / "train.jsonl", GOOD)
    valid = write(
        tmp_path / "validation.jsonl",
        [{"text": "Is it raining ", "labels": {"intent": "weather_query"}}],
    )
    report = validate_training_files(train, valid)
    assert report.ok and len(report.warnings) == 1
    assert (
        "validation.jsonl, line 1, field 'text': warning: same text as train.jsonl line 2"
        in str(report.warnings[0])
    )


def test_same_text_with_other_labels_in_training_is_a_warning(tmp_path):
    train = write(
        tmp_path / "train.jsonl",
        [
            *GOOD,
            {"text": "Is it raining ", "labels": {"intent": "weather_query"}},  # same label: fine
            {"text": "WAKE ME UP AT SIX", "labels": {"intent": "alarm_query"}},
        ],
    )
    report = validate_training_files(train)
    assert report.ok and [str(p) for p in report.warnings] == [
        "train.jsonl, line 4, field 'labels': warning: same text as train.jsonl line 1 with "
        "other labels (conflicting examples)"
    ]


def test_every_problem_is_reported_and_display_names_are_used(tmp_path):
    path = write(tmp_path / "abc123", [*GOOD, "{bad\n", {"text": ""}, {"text": "x", "labels": 3}])
    report = validate_training_files(("my_train.jsonl", path))
    assert [p.line for p in report.errors] == [3, 4, 4, 5]
    assert all(str(p).startswith("my_train.jsonl, line") for p in report.errors)
    with pytest.raises(formatting.TrainingFileError, match="4 error"):
        report.raise_for_errors()


def test_missing_and_empty_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    assert "file is empty" in only_error(validate_training_files(tmp_path / "empty.jsonl"))
    assert "cannot read file" in only_error(validate_training_files(tmp_path / "nope.jsonl"))
