"""Fixtures of the smoke tier (``tests/smoke``): the tiny data root and the scripts' environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from smoke_data import write_shared_data

REPO = Path(__file__).resolve().parents[2]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A tiny ``--data-root``: every shared data set, synthetic, in the shared layout."""
    return write_shared_data(tmp_path_factory.mktemp("shared_data"))


@pytest.fixture(scope="session")
def script_env() -> dict[str, str]:
    """The environment of every script run: the hub offline, the repository importable."""
    env = {k: v for k, v in os.environ.items() if k != "DASK_SCHEDULER_ADDRESS"}
    env.update(OFFLINE)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env
