"""Cut a release: check the tree, the version and its CHANGELOG section, tag, build.

    python tools/release.py            # or: make release
    python tools/release.py --dry-run  # only the checks

The version is written once, ``[project].version`` in pyproject.toml; the tag is ``v`` + the
version, which is the ref the Colab badges, install cells and links name
(``tools/sync_notebooks.py``). Checks, in order: the work tree is clean (what is tagged is
what was committed), ``CHANGELOG.md`` has a section ``## v{version}``, the notebooks are in
sync with the version (badges, install cells, links), and the tag does not already name
another commit. Then it builds the sdist and the wheel into ``dist/`` and, when that worked,
creates the annotated tag ``v{version}`` at HEAD. Push the tag yourself (``git push origin
v{version}``): until it is on GitHub, the badges and install cells of this version point at
nothing.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ReleaseError(Exception):
    """A check failed; the message says which and what to do."""


def version(root: Path) -> str:
    with open(root / "pyproject.toml", "rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def changelog_section(root: Path, tag: str) -> str | None:
    """The text of the CHANGELOG's ``## {tag}`` section (None when it has none)."""
    text = (root / "CHANGELOG.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(tag)}\b.*?$(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    return match.group(1).strip() if match else None


def git(root: Path, *args: str, check: bool = True) -> str:
    result = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def check(root: Path) -> str:
    """Every check; returns the tag to create."""
    tag = "v" + version(root)
    dirty = git(root, "status", "--porcelain")
    if dirty:
        raise ReleaseError(
            f"the work tree has uncommitted changes; commit or stash them first:\n{dirty}"
        )
    if not changelog_section(root, tag):
        raise ReleaseError(
            f"CHANGELOG.md has no section '## {tag}' (with what changed): rename "
            "'## Unreleased' to it, or bump [project].version in pyproject.toml"
        )
    sys.path.insert(0, str(root / "tools"))
    import sync_notebooks

    if root.resolve() == sync_notebooks.ROOT.resolve():
        drift = sync_notebooks.sync(check=True)
        if drift:
            raise ReleaseError(
                f"notebooks out of date for {tag}: {', '.join(drift)} "
                "(run python tools/sync_notebooks.py and commit)"
            )
    existing = git(root, "rev-list", "-n", "1", tag, check=False)
    head = git(root, "rev-parse", "HEAD")
    if existing and existing != head:
        raise ReleaseError(
            f"tag {tag} already names commit {existing[:12]}, not HEAD {head[:12]}: "
            "bump [project].version for a new release"
        )
    return tag


def release(root: Path, dry_run: bool = False, build: bool = True) -> str:
    tag = check(root)
    if dry_run:
        print(f"{tag}: every check passed (dry run: no tag, no build)")
        return tag
    if build:  # first: a build that fails leaves no tag behind
        done = subprocess.run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", "dist", "."],
            cwd=root,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise ReleaseError(f"the build failed, nothing was tagged:\n{done.stdout[-2000:]}")
        print(f"built: {', '.join(sorted(p.name for p in (root / 'dist').glob('*')))}")
    if not git(root, "tag", "--list", tag):
        git(root, "tag", "-a", tag, "-m", f"Release {tag}\n\n{changelog_section(root, tag)}")
        print(f"tagged {tag} at {git(root, 'rev-parse', '--short', 'HEAD')}")
    else:
        print(f"{tag} already names HEAD")
    print(f"push it: git push origin {tag}")
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="run the checks only")
    parser.add_argument("--no-build", action="store_true", help="tag without building")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        release(args.root, dry_run=args.dry_run, build=not args.no_build)
    except ReleaseError as exc:
        print(f"release refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
