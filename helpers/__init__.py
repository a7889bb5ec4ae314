"""Helpers for the intent-detection tutorial notebooks."""

import warnings
from importlib.metadata import PackageNotFoundError, version

try:  # the version is written once, in pyproject.toml
    __version__ = version("intent-classifier-helpers")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

# Libraries that use tqdm.auto warn in Jupyter when ipywidgets is missing, then fall back to
# text progress bars — which is what the lessons want. Keep that noise out of the outputs.
warnings.filterwarnings("ignore", message="IProgress not found")
