"""Worker-side receivers that note refused and failed deliveries in `DeliveryNote`."""

import logging
import os

from django.db import DatabaseError, transaction

__all__ = ["connect"]

logger = logging.getLogger("verification.chaos")

EXECUTE_STEP = "squidmesh.runtime.executor.execute_step"


def connect() -> None:
    from django_q.signals import post_execute_in_worker

    from squidmesh.signals import step_skipped

    step_skipped.connect(note_skip, dispatch_uid="chaos.note_skip")
    post_execute_in_worker.connect(note_failed_delivery, dispatch_uid="chaos.note_failed")


def note_skip(sender, *, run_id, step, attempt, reason, **metadata) -> None:
    from verification.chaos.models import DeliveryNote

    kind = DeliveryNote.Kind.DISCARDED if reason.startswith("attempt was closed") else None
    _note(kind or DeliveryNote.Kind.SKIPPED, run_id, step, attempt, reason)


def note_failed_delivery(sender, *, task, **kwargs) -> None:
    """Note an execute_step task that raised: deferred (held elsewhere) or an infrastructure fault."""
    from verification.chaos.models import DeliveryNote

    if task.get("success", True) or task.get("func") != EXECUTE_STEP:
        return
    result = str(task.get("result", ""))
    run_id, step, attempt = ([*list(task.get("args", ())), "", "", 0])[:3]
    kind = DeliveryNote.Kind.DEFERRED if "DeliveryDeferred" in result else DeliveryNote.Kind.FAULT
    _note(kind, run_id, step, attempt, result.split(" : ", 1)[0][:500])


def _note(kind, run_id, step, attempt, reason) -> None:
    from verification.chaos.models import DeliveryNote

    try:
        # A savepoint: the skip of a late finish is sent inside the engine's
        # transaction, which a failed write here must not poison.
        with transaction.atomic():
            DeliveryNote.objects.create(
                kind=kind,
                run_id=str(run_id),
                step=str(step),
                attempt=int(attempt or 0),
                reason=str(reason),
                pid=os.getpid(),
            )
    except DatabaseError:
        # The database may be restarting; the note is a figure, not an invariant.
        logger.warning("could not note %s delivery of %s %s#%s", kind, run_id, step, attempt)
