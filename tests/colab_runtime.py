"""A Python 3.13 environment that looks like Colab's before a lesson's install cell runs.

Colab's runtime comes with ~650 packages (``tests/data/colab/pip-freeze.txt``). The
simulation needs the ones our package touches — torch, numpy, pandas, the kernel stack
(ipykernel 6.17.1, ipython 7.34.0), transformers, datasets, ... — at Colab's versions.
Installing them costs minutes and gigabytes (PyPI's Linux torch wheels bring the CUDA
libraries), so they are installed once into a *layer*: a virtual environment in a cache folder
outside the repository (``$INTENT_TUTORIALS_CACHE``, default ``~/.cache/intent-tutorials``),
named after a hash of everything that goes into it. It is never modified afterwards.

Each test then creates a **fresh** virtual environment whose ``site-packages`` holds one
``.pth`` line adding the layer behind it: Python and pip see the layer's packages as
preinstalled (as on Colab), pip installs what the install cell asks for into the fresh
environment only (it never uninstalls outside the environment), and the layer stays as built.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "colab"
FREEZE = DATA / "pip-freeze.txt"
PYTHON_313 = ("python3.13", "/root/.pyenv/versions/3.13.0/bin/python3.13")

# Colab's preinstalled packages that the install cell must never reinstall or downgrade.
PROTECTED = ("torch", "numpy", "pandas", "ipykernel", "ipython")
# The Colab packages the layer holds: the protected ones, the kernel stack, and every Colab
# package that our base dependencies name (their own dependencies follow Colab's pins too).
LAYER = PROTECTED + (
    "jupyter_client",
    "nbformat",
    "pyarrow",
    "scipy",
    "matplotlib",
    "scikit-learn",
    "datasets",
    "huggingface_hub",
    "tqdm",
    "httpx",
    "fastapi",
    "uvicorn",
    "python-multipart",
    "pydantic",
    "transformers",
    "tokenizers",
    "safetensors",
    "sentence-transformers",
)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_pins(path: Path = FREEZE) -> dict[str, str]:
    """``{normalized name: version}`` of Colab's freeze; URL requirements give the version in
    their wheel or archive name (``torch-2.11.0%2Bcpu-...whl`` -> ``2.11.0+cpu``)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = line.split("==", 1)
            pins[normalize(name)] = version.strip()
            continue
        name, _, url = line.partition(" @ ")
        match = re.search(r"/[A-Za-z0-9_.]+?-(\d[^-/]*?)(?:-|\.tar\.gz)", url.replace("%2B", "+"))
        if match:
            pins[normalize(name)] = match.group(1)
    return pins


def public_version(version: str) -> str:
    """``2.11.0+cpu`` -> ``2.11.0``: PyPI has no CPU-only local builds."""
    return version.split("+", 1)[0]


def python313() -> str:
    """A working Python 3.13 (``$COLAB_PYTHON``, ``python3.13`` on PATH, or pyenv's)."""
    candidates = [os.environ.get("COLAB_PYTHON"), shutil.which("python3.13"), *PYTHON_313[1:]]
    for candidate in filter(None, candidates):
        try:
            ok = (
                subprocess.run(
                    [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
                    capture_output=True,
                ).returncode
                == 0
            )
        except OSError:
            ok = False
        if ok:
            return candidate
    raise RuntimeError(
        "the Colab simulation needs Python 3.13 (Colab's version): install it "
        "(e.g. `pyenv install 3.13`) or point $COLAB_PYTHON at one"
    )


def clean_env() -> dict[str, str]:
    """This process's environment without what would leak the checkout into a Colab venv."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))
    }


def run(cmd, **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("env", clean_env())
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def constraints() -> list[str]:
    """Every Colab pin as a pip constraint (public versions), except packages that are not on
    PyPI and the CUDA libraries: PyPI's torch is a CUDA build that pins its own."""
    skip = {"google-colab", "jupyter-kernel-gateway", "en-core-web-sm"}
    return [
        f"{name}=={public_version(v)}"
        for name, v in sorted(colab_pins().items())
        if name not in skip and not name.startswith(("nvidia-", "cuda-", "triton"))
    ]


def cache_root() -> Path:
    return Path(
        os.environ.get("INTENT_TUTORIALS_CACHE") or Path.home() / ".cache" / "intent-tutorials"
    )


def layer(log=print) -> Path:
    """The cached layer with Colab's packages for Python 3.13 (built on first use)."""
    python = python313()
    version = run([python, "-c", "import sys; print(sys.version)"]).stdout.strip()
    pins = colab_pins()
    wanted = [f"{name}=={public_version(pins[normalize(name)])}" for name in LAYER]
    key = hashlib.sha256(json.dumps([version, wanted, constraints()]).encode()).hexdigest()[:16]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"colab-py313-{key}"
    with open(root / f"{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; the others wait and reuse
        if (final / "READY").exists():
            return final
        shutil.rmtree(final, ignore_errors=True)
        start = time.monotonic()
        log(f"building the Colab layer {final} (first run only; minutes)")
        run([python, "-m", "venv", final])
        constraint_file = final / "colab-constraints.txt"
        constraint_file.write_text("\n".join(constraints()) + "\n", encoding="utf-8")
        run(
            [
                final / "bin" / "python",
                "-m",
                "pip",
                "install",
                "--quiet",
                "-c",
                constraint_file,
                *wanted,
            ]
        )
        (final / "READY").write_text(
            json.dumps(
                {
                    "python": version,
                    "packages": wanted,
                    "seconds": round(time.monotonic() - start),
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        log(f"built in {time.monotonic() - start:.0f} s")
        return final


def fresh_venv(path: Path, base: Path) -> Path:
    """A new Python 3.13 venv at ``path`` that sees ``base``'s packages as preinstalled."""
    run([python313(), "-m", "venv", path])
    pth = site_packages(path) / "00_colab_preinstalled.pth"
    pth.write_text(
        f"import site; site.addsitedir({str(site_packages(base))!r})\n", encoding="utf-8"
    )
    return path


def installed_versions(venv: Path, names) -> dict[str, str | None]:
    """Versions the venv's Python sees for ``names`` (None when missing)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))"
    )
    return json.loads(run([venv / "bin" / "python", "-c", code, *names]).stdout)
