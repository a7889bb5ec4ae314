"""A local, Mistral-compatible Classifier Factory: files, fine-tuning jobs, classifications.

Start it from a notebook with :func:`start_local_factory` (or ``python -m helpers.factory
serve``) and point the unmodified ``mistralai`` SDK at it with ``server_url``.
"""

from .launcher import running_factory_url, start_local_factory, stop_local_factory

__all__ = ["running_factory_url", "start_local_factory", "stop_local_factory"]
