"""The release: badges, install cells and links name the version's tag; the CHANGELOG has its
section; ``tools/release.py`` refuses what it must and tags and builds otherwise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import release  # noqa: E402
import sync_notebooks  # noqa: E402

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TAG = f"v{VERSION}"
CFG = sync_notebooks.config()
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def links(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [t for c in nb.cells if c.cell_type == "markdown" for t in LINK.findall(c.source)]


def anchors(markdown: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings."""
    out = set()
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text)))
    return out


def test_the_ref_is_the_versions_tag():
    assert CFG["ref"] == TAG
    for path in LESSONS:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells)
        assert f"/blob/{TAG}/notebooks/{path.name}" in text, f"{path.name}: badge"
        assert f"@{TAG}" in text, f"{path.name}: install cell"


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_no_relative_link_to_a_file_colab_cannot_open(path):
    """Relative links resolve against colab.research.google.com: only lessons may use them."""
    for target in links(path):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        assert target.split("#")[0].endswith(".ipynb") and "/" not in target, (path.name, target)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_links_into_the_repository_name_the_tag_and_an_existing_file(path):
    prefix = f"{CFG['repository']}/blob/"
    for target in links(path):
        if not target.startswith(CFG["repository"]):
            continue
        assert target.startswith(prefix + TAG + "/"), (path.name, target)
        file, _, anchor = target.removeprefix(prefix + TAG + "/").partition("#")
        assert (ROOT / file).is_file(), (path.name, target)
        if anchor and file.endswith(".md"):
            assert anchor in anchors(ROOT / file), (path.name, target)


def test_relative_links_are_made_absolute_at_the_tag():
    cfg = {"repository": "https://github.com/o/r", "ref": "v9.9.9"}
    source = (
        "a [term](GLOSSARY.md#step), [all](../README.md#lessons), [code](../helpers/data.py), "
        "[next](04_inference_evaluation.ipynb), [here](#top), [old](https://github.com/o/r/"
        "blob/v0.0.1/README.md), [web](https://example.org/x.md)"
    )
    assert sync_notebooks.absolute_links(source, cfg) == (
        "a [term](https://github.com/o/r/blob/v9.9.9/notebooks/GLOSSARY.md#step), "
        "[all](https://github.com/o/r/blob/v9.9.9/README.md#lessons), "
        "[code](https://github.com/o/r/blob/v9.9.9/helpers/data.py), "
        "[next](04_inference_evaluation.ipynb), [here](#top), "
        "[old](https://github.com/o/r/blob/v9.9.9/README.md), [web](https://example.org/x.md)"
    )


def test_notebooks_are_in_sync_with_the_version():
    assert sync_notebooks.sync(check=True) == []


def test_the_changelog_has_the_versions_section():
    assert release.changelog_section(ROOT, TAG), f"CHANGELOG.md needs '## {TAG}'"


def test_the_install_cell_says_what_to_do_when_the_tag_cannot_be_fetched():
    cell = sync_notebooks.setup_source(CFG)
    assert "cannot fetch" in cell and "fork" in cell


# -- tools/release.py on a throwaway repository --------------------------------------------------


def project(tmp_path: Path, changelog: str) -> Path:
    root = tmp_path / "proj"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "__init__.py").write_text("")
    (root / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tiny-release-check"\nversion = "1.2.3"\n'
        '[tool.setuptools]\npackages = ["tiny"]\n'
    )
    (root / "CHANGELOG.md").write_text(changelog)
    (root / ".gitignore").write_text("dist/\n*.egg-info/\nbuild/\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "first"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, check=True
        )
    return root


def test_release_refuses_without_a_changelog_section(tmp_path):
    root = project(tmp_path, "# Changelog\n\n## Unreleased\n- things\n")
    with pytest.raises(release.ReleaseError, match="no section '## v1.2.3'"):
        release.check(root)


def test_release_refuses_a_dirty_tree(tmp_path):
    root = project(tmp_path, "# Changelog\n\n## v1.2.3 — today\n- things\n")
    (root / "tiny" / "new.py").write_text("x = 1\n")
    with pytest.raises(release.ReleaseError, match="uncommitted changes"):
        release.check(root)
    assert release.main(["--root", str(root), "--dry-run"]) == 1


@pytest.mark.slow  # builds an sdist and a wheel
def test_release_tags_and_builds(tmp_path):
    root = project(tmp_path, "# Changelog\n\n## v1.2.3 — today\n- things\n\n## v1.2.2\n- old\n")
    assert release.release(root) == "v1.2.3"
    message = release.git(root, "tag", "-l", "--format=%(contents)", "v1.2.3")
    assert "Release v1.2.3" in message and "- things" in message and "old" not in message
    assert release.git(root, "cat-file", "-t", "v1.2.3") == "tag"  # annotated
    built = sorted(p.name for p in (root / "dist").iterdir())
    assert built == ["tiny_release_check-1.2.3-py3-none-any.whl", "tiny_release_check-1.2.3.tar.gz"]
    assert release.release(root, build=False) == "v1.2.3"  # again: the tag already names HEAD
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## v1.2.3\n- changed\n")
    release.git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "more")
    with pytest.raises(release.ReleaseError, match="already names commit"):
        release.check(root)


@pytest.mark.slow  # runs a build
def test_a_failed_build_leaves_no_tag(tmp_path):
    root = project(tmp_path, "# Changelog\n\n## v1.2.3\n- things\n")
    text = (
        (root / "pyproject.toml").read_text().replace('packages = ["tiny"]', 'packages = ["gone"]')
    )
    (root / "pyproject.toml").write_text(text)
    release.git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "break")
    with pytest.raises(release.ReleaseError, match="the build failed, nothing was tagged"):
        release.release(root)
    assert release.git(root, "tag", "--list") == ""


def test_the_readme_runtime_column_comes_from_the_recorded_runs(tmp_path):
    assert [sync_notebooks.runtime_text(s) for s in (3, 41, 89, 95, 260, 1000)] == [
        "~5 s",
        "~40 s",
        "~90 s",
        "~1.5 min",
        "~4.5 min",
        "~17 min",
    ]
    readme = (
        "| Lesson | What | Runtime | Colab |\n"
        "| [03 Train](notebooks/03_train.ipynb) | training | ~35 s | badge |\n"
        "| [04 Test](notebooks/04_test.ipynb) | testing | ~11 s | badge |\n"
    )
    out = sync_notebooks.readme_with_runtimes(readme, {"03_train.ipynb": 98})
    assert "| ~1.5 min |" in out and "| ~11 s |" in out  # a lesson not recorded is left alone
    # the committed README agrees with the committed runtimes (sync --check covers it)
    runtimes = json.loads((ROOT / "notebooks" / "runtimes.json").read_text())["lessons"]
    readme_text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert sync_notebooks.readme_with_runtimes(readme_text, runtimes) == readme_text
    assert set(runtimes) == {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
