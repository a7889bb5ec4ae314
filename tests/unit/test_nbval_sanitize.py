"""The sanitize file masks only what differs between runs and machines, nothing a lesson means."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[1] / "nbval_sanitize.cfg"


def sanitize(text: str) -> str:
    """What nbval does with the file: every section's regex/replace, in order."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(CONFIG)
    for section in parser.sections():
        text = re.sub(parser[section]["regex"], parser[section]["replace"], text)
    return text


@pytest.mark.parametrize(
    ("one_machine", "another"),
    [
        ('"alarm_query": 4.6725e-07,', '"alarm_query": 4.7581e-07,'),  # tiny scores: noise
        ('"general_quirky": 2.359252903261222e-05', '"general_quirky": 2.4e-05'),
        ("largest score difference 1.5e-06", "largest score difference 3.1e-07"),
        ("service: http://127.0.0.1:40375", "service: http://127.0.0.1:53579"),
        ("accuracy 0.95151234", "accuracy 0.95159"),  # 4 decimals compared
    ],
)
def test_noise_is_masked(one_machine, another):
    assert sanitize(one_machine) == sanitize(another)


@pytest.mark.parametrize(
    ("stored", "changed"),
    [
        ("accuracy 0.9515", "accuracy 0.9493"),
        ("'train': 3627", "'train': 3628"),
        ('"calendar_set": 0.0002,', '"calendar_set": 0.0003,'),  # 1e-4 and above still compared
        ("largest score difference 2.2e-01", "largest score difference 3.2e-01"),
        ("threshold 0.789", "threshold 0.790"),
        ("prediction 'alarm_set'", "prediction 'alarm_query'"),
    ],
)
def test_what_a_lesson_means_is_compared(stored, changed):
    assert sanitize(stored) != sanitize(changed)
