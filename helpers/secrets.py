"""API keys for notebooks: from the environment, then Colab secrets, then a hidden prompt.

Keys never go into notebook parameters, outputs or logs: notebooks call :func:`get_secret`
and pass the value straight to the client.
"""

from __future__ import annotations

import getpass
import os
import sys


def _from_colab(name: str) -> str | None:
    if "google.colab" not in sys.modules:
        return None
    try:
        from google.colab import userdata  # type: ignore[import-not-found]

        return userdata.get(name) or None
    except Exception:  # secret missing, or notebook access not granted
        return None


def _person_at_keyboard() -> bool:
    """True in an interactive Jupyter session or terminal; False under papermill or CI."""
    if os.environ.get("CI"):
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        shell = None
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        return bool(getattr(kernel, "_allow_stdin", False))  # papermill runs without stdin
    return sys.stdin is not None and sys.stdin.isatty()


def get_secret(name: str, prompt: bool = True) -> str | None:
    """The secret ``name`` (e.g. ``MISTRAL_API_KEY``), or None when it is nowhere to be found.

    Order: environment variable, Colab secret of that name, then — only when a person is at
    the keyboard and ``prompt`` is true — a hidden ``getpass`` prompt.
    """
    value = os.environ.get(name) or _from_colab(name)
    if value:
        return value
    if prompt and _person_at_keyboard():
        try:
            value = getpass.getpass(f"{name} (input hidden, leave empty to skip): ").strip()
        except Exception:  # no stdin after all
            return None
        return value or None
    return None
