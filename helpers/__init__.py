"""Helpers for the intent-detection tutorial notebooks."""

import warnings

# Libraries that use tqdm.auto warn in Jupyter when ipywidgets is missing, then fall back to
# text progress bars — which is what the lessons want. Keep that noise out of the outputs.
warnings.filterwarnings("ignore", message="IProgress not found")
