"""The real django-q2 dispatcher, plus a ledger row per dispatch in the same transaction."""

from django.utils import timezone

from squidmesh.models import WorkflowRun
from squidmesh.runtime.dispatcher import Dispatch, DjangoQDispatcher
from verification.chaos.models import DispatchRecord

__all__ = ["RecordingDispatcher"]


class RecordingDispatcher(DjangoQDispatcher):
    def dispatch(self, work: Dispatch) -> str | None:
        # The engine dispatches inside the transaction that changes the run,
        # under its row lock: `at` orders exactly against `finished_at`, and
        # the status read here is the one this transaction leaves.
        status = WorkflowRun.objects.filter(pk=work.run_id).values_list("status", flat=True)
        DispatchRecord.objects.create(
            run_id=work.run_id,
            step=work.step,
            attempt=work.attempt,
            due=work.due,
            at=timezone.now(),
            run_status=status.first() or "",
        )
        return super().dispatch(work)
