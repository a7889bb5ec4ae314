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


@pytest.mark.slow
def test_the_launcher_keeps_the_key_off_the_command_line_and_the_files_owner_only(tmp_path):
    """``start_local_factory(api_key=...)`` passes the key in the environment (``ps`` shows
    command lines to every local user), and a real ``serve`` creates its files owner-only."""
    import stat

    import httpx

    from helpers.factory import start_local_factory, stop_local_factory

    key = "k3y-that-ps-must-not-show"
    data_dir = tmp_path / "factory"
    url = start_local_factory(data_dir, api_key=key)
    try:
        health = httpx.get(f"{url}/health", headers={"authorization": f"Bearer {key}"})
        cmdline = Path(f"/proc/{health.json()['pid']}/cmdline").read_bytes()
        assert b"helpers.factory" in cmdline and key.encode() not in cmdline
        assert httpx.get(f"{url}/health").status_code == 401
        for path in (data_dir, data_dir / "factory.sqlite3", data_dir / "server.log"):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        assert stat.S_IMODE((data_dir / "server.stderr").stat().st_mode) & 0o077 == 0
    finally:
        stop_local_factory(data_dir)


@pytest.mark.slow
def test_start_serves_later_callers_and_exits_with_the_given_process(tmp_path):
    """``python -m helpers.factory start`` (``make run``): one service for every lesson, found by
    ``start_local_factory`` in each, gone soon after the process it was tied to."""
    import time

    from helpers.factory import running_factory_url, start_local_factory

    data_dir = tmp_path / "factory"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        command = [sys.executable, "-m", "helpers.factory", "start", "--data-dir", str(data_dir)]
        started = subprocess.run(
            [*command, "--exit-with-parent", str(holder.pid)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("http://127.0.0.1:")
        assert start_local_factory(data_dir) == url  # a lesson reuses it
        holder.kill()
        holder.wait()
        deadline = time.monotonic() + 20
        while running_factory_url(data_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert running_factory_url(data_dir) is None
        refused = subprocess.run(
            [*command, "--exit-with-parent", str(holder.pid)], capture_output=True, text=True
        )
        assert refused.returncode == 2 and "no such process" in refused.stderr
    finally:
        holder.kill()
