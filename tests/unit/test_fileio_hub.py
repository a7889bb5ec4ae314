"""helpers.fileio (atomic writes) and helpers.hub (one reading of HF_HUB_OFFLINE)."""

import json
import os

import pytest

from helpers.fileio import atomic_write, write_json
from helpers.hub import hub_offline


def test_atomic_write_bytes_and_text_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    atomic_write(path, "héllo\n")
    assert path.read_bytes() == "héllo\n".encode()
    assert os.listdir(path.parent) == ["out.bin"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "keep.txt"
    atomic_write(path, "old")
    with pytest.raises(TypeError, match="keep.txt.*must be bytes or str, got int"):
        atomic_write(path, 12345)  # not bytes or str
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["keep.txt"]


def test_write_json(tmp_path):
    path = write_json(tmp_path / "r.json", {"b": 1, "a": [0.5, None], "when": tmp_path})
    assert json.loads(path.read_text()) == {"b": 1, "a": [0.5, None], "when": str(tmp_path)}
    assert path.read_text().endswith("}\n")


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes", "on", " 1 "])
def test_hub_offline_values(monkeypatch, value):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert hub_offline() and hub_offline(datasets=True)


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off"])
def test_hub_online_values(monkeypatch, value):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    assert not hub_offline() and not hub_offline(datasets=True)


def test_datasets_offline_only_switches_data_off(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "true")
    assert hub_offline(datasets=True) and not hub_offline()
