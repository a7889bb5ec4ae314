"""``python -m helpers.factory serve``: where the key comes from, and a clear refusal to start."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.factory.__main__ import _api_key


def args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"api_key": None, "api_key_file": None, **kw})


def test_key_from_file_env_or_command_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FACTORY_API_KEY", "from-env")
    assert _api_key(args()) == "from-env"
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert _api_key(args(api_key_file=key_file)) == "from-file"
    with caplog.at_level(logging.WARNING):
        assert _api_key(args(api_key="visible")) == "visible"
    assert "visible to every local user" in caplog.text
    monkeypatch.delenv("FACTORY_API_KEY")
    assert _api_key(args()) is None
    key_file.write_text("  \n")
    with pytest.raises(SystemExit, match="is empty"):
        _api_key(args(api_key_file=key_file))


def test_a_corrupted_database_stops_start_up_with_a_message_not_a_traceback(tmp_path):
    data_dir = tmp_path / "factory"
    data_dir.mkdir()
    (data_dir / "factory.sqlite3").write_bytes(b"garbage" * 1000)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.factory",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 3
    assert "cannot be read as a SQLite database" in done.stderr
    assert "Traceback" not in done.stderr


def test_server_log_rotates_and_names_the_process(tmp_path):
    from helpers.factory.__main__ import LOG_BYTES, _configure_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        _configure_logging(tmp_path, "info")
        handler = root.handlers[0]
        assert isinstance(handler, logging.handlers.RotatingFileHandler)
        assert handler.maxBytes == LOG_BYTES and handler.backupCount == 3
        logging.getLogger("factory-test").info("hello")
        handler.flush()
        assert f" {os.getpid()} INFO factory-test: hello" in (tmp_path / "server.log").read_text()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved[0], saved[1]
