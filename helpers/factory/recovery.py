"""What a process that stopped (or was killed) left half-done, repaired by the next worker."""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from .job_states import IN_TRAINING

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the service restarted while this job was running"
REQUEUED = "requeued: the service restarted before this job's validation finished"


def recover(store: Store) -> None:
    """Repair what a process that stopped (or was killed) left half-done.

    Training that was interrupted is FAILED (CANCELLED if a cancel was pending) and its partial
    model removed; a validation that was interrupted goes back to the queue.
    Jobs queued for training that never started stay queued.
    """
    for job in store.jobs_with_status(IN_TRAINING):
        to = "CANCELLED" if job.status == "CANCELLATION_REQUESTED" else "FAILED"
        if store.transition(job.id, [job.status], to, event={"error": INTERRUPTED}):
            log.warning("job %s was %s when the service stopped: %s", job.id, job.status, to)
            shutil.rmtree(store.models_dir / job.id, ignore_errors=True)
    for job in store.jobs_with_status(["VALIDATING"]):
        if store.transition(job.id, ["VALIDATING"], "QUEUED", event={"info": REQUEUED}):
            log.warning("job %s was being validated when the service stopped: queued again", job.id)
    for tmp in store.models_dir.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for partial in store.remove_stale_partials():
        log.warning("removed %s, an upload interrupted when its service stopped", partial.name)
