"""Where an export may write: never over a user's folder, never through a link (issue 29)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import export
from helpers.export import MARKER, ExportError, _remove_abandoned, _writable_out_dir


def earlier_export(folder, files=("model.onnx", "labels.json", "predict.py", "README.md")):
    folder.mkdir()
    for name in files:
        (folder / name).write_text("x")
    (folder / MARKER).write_text(json.dumps({"model": "ft:m", "files": [*files, MARKER]}))
    return folder


def test_a_new_or_empty_folder_or_an_earlier_export_is_writable(tmp_path):
    assert _writable_out_dir(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    assert _writable_out_dir(tmp_path / "empty") == tmp_path / "empty"
    assert _writable_out_dir(earlier_export(tmp_path / "old")) == tmp_path / "old"


def test_a_folder_that_merely_holds_a_labels_json_is_refused_and_kept(tmp_path):
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "labels.json").write_text("{}")
    (mine / "sub" / "thesis.tex").write_text("years of work")
    with pytest.raises(ExportError, match=r"not an earlier export .*nothing was changed"):
        _writable_out_dir(mine)
    assert (mine / "sub" / "thesis.tex").read_text() == "years of work"


def test_an_export_with_files_it_did_not_write_is_refused(tmp_path):
    out = earlier_export(tmp_path / "old")
    (out / "notes.txt").write_text("mine")
    (out / "data").mkdir()
    with pytest.raises(ExportError, match=r"also data, notes.txt, which the export did not write"):
        _writable_out_dir(out)


def test_links_and_files_are_refused(tmp_path):
    target = earlier_export(tmp_path / "real")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(ExportError, match="symbolic link"):
        _writable_out_dir(tmp_path / "link")
    out = earlier_export(tmp_path / "old")
    (out / "README.md").unlink()
    (out / "README.md").symlink_to(tmp_path / "elsewhere.md")
    with pytest.raises(ExportError, match="README.md, which the export did not write"):
        _writable_out_dir(out)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ExportError, match="exists and is not a folder"):
        _writable_out_dir(tmp_path / "afile")


def test_the_cli_answers_a_file_as_out_dir_with_a_message_not_a_traceback(tmp_path):
    (tmp_path / "out").write_text("a file")
    done = subprocess.run(
        [sys.executable, "-m", "helpers.export", "--data-dir", str(tmp_path), "ft:x", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: ") and "exists and is not a folder" in done.stderr
    assert (tmp_path / "out").read_text() == "a file"


def test_abandoned_temporary_folders_of_dead_exports_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".export-{dead.pid}-abc").mkdir()
    (tmp_path / f".export-{os.getpid()}-def").mkdir()  # a live export: kept
    (tmp_path / ".export-notapid").mkdir()
    _remove_abandoned(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".export-{os.getpid()}-def",
        ".export-notapid",
    ]
    assert export.MARKER == ".classifier-export"
