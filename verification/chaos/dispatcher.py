"""The real django-q2 dispatcher, plus a ledger row per dispatch in the same transaction."""

from django.utils import timezone

from squidmesh.runtime.dispatcher import Dispatch, DjangoQDispatcher
from verification.chaos.models import DispatchRecord

__all__ = ["RecordingDispatcher"]


class RecordingDispatcher(DjangoQDispatcher):
    def dispatch(self, work: Dispatch) -> str | None:
        # The engine dispatches inside the transaction that changes the run,
        # under its row lock, so `at` orders exactly against `finished_at`.
        DispatchRecord.objects.create(
            run_id=work.run_id,
            step=work.step,
            attempt=work.attempt,
            due=work.due,
            at=timezone.now(),
        )
        return super().dispatch(work)
