"""The pre-commit hooks point at tools that exist, and the repository passes the size guard."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import check_large_files  # noqa: E402


def hooks() -> list[dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_every_hook_runs_a_project_tool_that_exists():
    ids = {hook["id"] for hook in hooks()}
    assert {"ruff", "ruff-format", "notebooks-in-sync", "large-files"} <= ids
    for hook in hooks():
        words = shlex.split(hook["entry"])
        assert words[0].startswith(".venv/bin/"), hook["id"]
        scripts = [w for w in words[1:] if w.endswith(".py")]
        assert all((ROOT / s).is_file() for s in scripts), (hook["id"], scripts)


def test_tracked_files_pass_the_size_guard():
    limit = next(h for h in hooks() if h["id"] == "large-files")["entry"].split("--max-kb ")[1]
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked
    assert check_large_files.too_large([str(ROOT / p) for p in tracked], int(limit)) == []


def test_the_guard_names_a_file_over_the_limit(tmp_path, capsys):
    big, small = tmp_path / "weights.bin", tmp_path / "notes.txt"
    big.write_bytes(b"0" * 3 * 1024)
    small.write_text("fine")
    assert check_large_files.main(["--max-kb", "2", str(big), str(small)]) == 1
    err = capsys.readouterr().err
    assert "weights.bin: 3 kB, over the 2 kB limit" in err and "notes.txt" not in err
    assert check_large_files.main(["--max-kb", "2", str(small)]) == 0
