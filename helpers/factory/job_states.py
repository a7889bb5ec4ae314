"""A fine-tuning job's statuses and the moves between them: the only list of either.

::

    QUEUED --(worker)--> VALIDATING --> VALIDATED --(start)--> QUEUED* --> RUNNING --> SUCCESS
                                   \\-> FAILED_VALIDATION                          \\-> FAILED
    cancel: QUEUED, VALIDATING, VALIDATED, QUEUED* -> CANCELLED;
            RUNNING -> CANCELLATION_REQUESTED -> CANCELLED (the trainer stops at its next step)

``QUEUED*`` is a job queued for training (``started`` is set by ``start`` or ``auto_start``).
``STARTED`` is part of Mistral's wire contract; the local service never sets it.
This module imports nothing from the project, so any module may import it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

JobStatus = Literal[
    "QUEUED",
    "STARTED",
    "VALIDATING",
    "VALIDATED",
    "RUNNING",
    "FAILED_VALIDATION",
    "FAILED",
    "SUCCESS",
    "CANCELLED",
    "CANCELLATION_REQUESTED",
]
STATUSES: tuple[str, ...] = get_args(JobStatus)

TERMINAL = frozenset({"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"})
FAILURES = ("FAILED_VALIDATION", "FAILED", "CANCELLED")  # the terminal statuses but SUCCESS
IN_TRAINING = ("RUNNING", "CANCELLATION_REQUESTED")  # a trainer may be working on the job
NOT_SUCCEEDED = tuple(s for s in STATUSES if s not in ("SUCCESS", "STARTED"))  # no model yet

TRANSITIONS: dict[str, frozenset[str]] = {
    "QUEUED": frozenset({"VALIDATING", "RUNNING", "CANCELLED", "FAILED"}),
    "VALIDATING": frozenset({"VALIDATED", "FAILED_VALIDATION", "CANCELLED", "QUEUED", "FAILED"}),
    "VALIDATED": frozenset({"QUEUED", "CANCELLED"}),
    "RUNNING": frozenset({"SUCCESS", "FAILED", "CANCELLATION_REQUESTED", "CANCELLED"}),
    "CANCELLATION_REQUESTED": frozenset({"CANCELLED", "FAILED"}),
    **{status: frozenset() for status in TERMINAL},
}


def check_transition(from_statuses: Iterable[str], to_status: str) -> None:
    """Raise ValueError unless every status in ``from_statuses`` may move to ``to_status``."""
    for status in from_statuses:
        if to_status not in TRANSITIONS.get(status, frozenset()):
            raise ValueError(f"a job cannot move from {status} to {to_status}")
