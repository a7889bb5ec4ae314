"""What one request or one job may ask of this machine; every limit is a ``serve`` option.

=====================  ==========  ===========================================================
limit                  default     beyond it
=====================  ==========  ===========================================================
max_body_bytes         16 MiB      JSON request body: 413 (uploads have ``--max-upload-mb``)
max_request_chars      1,000,000   total characters of one classification request: 413
max_input_chars        20,000      each classification input is truncated to this many
                                   characters before the model sees it (as Mistral truncates
                                   to the model's context; encoders then keep their first
                                   64 tokens)
max_labels             1,000       labels of one classifier target: FAILED_VALIDATION
max_training_steps     100,000     ``hyperparameters.training_steps``: 422
max_training_bytes     64 MiB      a job's training and validation files together: 422 (a
                                   file may be larger than this up to ``--max-upload-mb``,
                                   but no job trains on more; validation reads them streamed)
max_train_memory       50 %        of the memory available at validation: a job whose
                                   estimated training memory is larger fails validation
                                   with the estimate
body_timeout_s         30 s        a request body that stalls this long between two reads:
                                   408 (connection closed); a total time is not enforced
header_timeout_s       30 s        a connection whose request headers are not complete this
                                   long after it opened (or after the request's first byte):
                                   408 (connection closed)
=====================  ==========  ===========================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # the default Host-header allow-list


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 16 * 1024 * 1024
    max_request_chars: int = 1_000_000
    max_input_chars: int = 20_000
    max_labels: int = 1_000
    max_training_steps: int = 100_000
    max_training_bytes: int = 64 * 1024 * 1024
    max_train_memory_fraction: float = 0.5
    body_timeout_s: float = 30.0
    header_timeout_s: float = 30.0


def available_memory_bytes() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo`` (Linux), else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def gib(n: float) -> str:
    return f"{n / 1024**3:.1f} GiB"
