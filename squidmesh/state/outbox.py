"""Writes to the outbox after a relay's hand-over (the dispatcher writes the messages themselves)."""

from __future__ import annotations

from django.db.models import F

from squidmesh.models import OutboxMessage

__all__ = ["forget_handed_over", "record_refused_handover"]


def forget_handed_over(message_ids: list[int]) -> None:
    """Delete messages the broker took (inside the relay's claiming transaction)."""
    if message_ids:
        OutboxMessage.objects.filter(pk__in=message_ids).delete()


def record_refused_handover(message: OutboxMessage, error: BaseException) -> None:
    """Count a refused hand-over on `message` and keep its error; it is retried later."""
    OutboxMessage.objects.filter(pk=message.pk).update(
        failed_handovers=F("failed_handovers") + 1,
        last_error=f"{type(error).__name__}: {error}"[:2000],
    )
