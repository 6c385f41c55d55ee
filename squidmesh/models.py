"""Durable workflow state: runs, step runs and attempts."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from squidmesh.audit import EventKind, EventSource
from squidmesh.lifecycle import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    AttemptStatus,
    RunStatus,
    StepStatus,
)

if TYPE_CHECKING:
    from squidmesh.runtime.dispatcher import Dispatch

from squidmesh.querysets import (
    AttemptQuerySet,
    OutboxQuerySet,
    StepRunQuerySet,
    WorkflowRunQuerySet,
)

__all__ = ["CronTickFailure", "OutboxMessage", "RunEvent", "StepAttempt", "StepRun", "WorkflowRun"]


class WorkflowRun(models.Model):
    """One execution of a workflow, from its trigger to a terminal status."""

    Status = RunStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.CharField(
        _("workflow"), max_length=200, help_text=_("Registered name of the workflow.")
    )
    trigger = models.CharField(_("trigger"), max_length=100)
    status = models.CharField(
        _("status"), max_length=20, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    payload = models.JSONField(_("payload"), default=dict, encoder=DjangoJSONEncoder)
    context = models.JSONField(
        _("context"),
        default=dict,
        encoder=DjangoJSONEncoder,
        help_text=_("Outputs of the succeeded steps, merged in order."),
    )
    current_step = models.CharField(_("current step"), max_length=200, null=True, blank=True)
    last_error = models.JSONField(_("last error"), null=True, blank=True, encoder=DjangoJSONEncoder)
    replayed_from = models.ForeignKey(
        "self",
        verbose_name=_("replayed from"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replays",
    )
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, null=True, blank=True)
    scheduled_for = models.DateTimeField(
        _("next delivery due"),
        null=True,
        blank=True,
        help_text=_("When the pending delivery (a wait or a retry) is due, if it is delayed."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = WorkflowRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("workflow run")
        verbose_name_plural = _("workflow runs")
        ordering = ["-created_at", "-id"]
        # Operator actions: the admin never edits runs, it calls the runtime API.
        permissions = [
            ("start_workflowrun", _("Can start workflow runs")),
            ("cancel_workflowrun", _("Can cancel workflow runs")),
            ("replay_workflowrun", _("Can replay workflow runs")),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="squidmesh_run_newest"),
            models.Index(fields=["workflow", "-created_at"], name="squidmesh_run_workflow"),
            models.Index(fields=["status", "-created_at"], name="squidmesh_run_status"),
            models.Index(
                fields=["updated_at"],
                name="squidmesh_run_live",
                condition=Q(status__in=sorted(ACTIVE_STATUSES)),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="squidmesh_run_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="squidmesh_run_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow} {self.pk} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    # Set by `inspect_run(..., include_history=True)` (its prefetch), or on
    # first read of `history`.
    _history: list[StepRun] | None = None
    # Columns of the claim query (`WorkflowRunQuerySet.locked_for_step`), set
    # only on the run it returns: how many step runs it has, and the id of the
    # step run being claimed (None when the run never reached that step).
    steps_reached: int
    step_run_id: uuid.UUID | None

    @property
    def history(self) -> list[StepRun]:
        """Return the step runs in execution order, each with `attempts` in number order.

        Free on a run from `inspect_run(..., include_history=True)`; any
        other run loads it on first access (two queries) and keeps it.
        """
        if self._history is None:
            self._history = list(
                self.step_runs.in_order().prefetch_related(
                    models.Prefetch("attempts", queryset=StepAttempt.objects.order_by("number"))
                )
            )
        return self._history

    @history.setter
    def history(self, step_runs: list[StepRun]) -> None:
        self._history = list(step_runs)


class StepRun(models.Model):
    """The state of one step within one run (each step runs at most once per run)."""

    Status = StepStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(
        WorkflowRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="step_runs"
    )
    step = models.CharField(_("step"), max_length=200)
    position = models.PositiveIntegerField(
        _("position"), help_text=_("Order in which the run reached this step (1-based).")
    )
    status = models.CharField(_("status"), max_length=20, choices=StepStatus.choices)
    output = models.JSONField(
        _("output"),
        null=True,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text=_("The mapping the step returned, merged into the run context."),
    )
    note = models.JSONField(
        _("note"),
        null=True,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text=_("Built-in step record: the message of a log step, the due time of a wait."),
    )
    attempt_count = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.JSONField(_("last error"), null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    objects = StepRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("step run")
        verbose_name_plural = _("step runs")
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="squidmesh_steprun_unique_step"),
        ]

    def __str__(self) -> str:
        return f"{self.step} ({self.status})"


class StepAttempt(models.Model):
    """One execution attempt of a step: one delivery that ran the step body."""

    Status = AttemptStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    step_run = models.ForeignKey(
        StepRun, verbose_name=_("step run"), on_delete=models.CASCADE, related_name="attempts"
    )
    run = models.ForeignKey(
        WorkflowRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="attempts"
    )
    number = models.PositiveIntegerField(_("attempt number"))
    status = models.CharField(_("status"), max_length=20, choices=AttemptStatus.choices)
    error = models.JSONField(_("error"), null=True, blank=True, encoder=DjangoJSONEncoder)
    due_at = models.DateTimeField(
        _("due"), null=True, blank=True, help_text=_("When the delivery was due to start.")
    )
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    worker = models.CharField(
        _("worker"), max_length=200, blank=True, help_text=_("host:pid that ran the attempt.")
    )
    heartbeat_at = models.DateTimeField(
        _("last heartbeat"),
        null=True,
        blank=True,
        help_text=_(
            "Last sign of life of the worker running the attempt (brokers without a lease, "
            "such as Redis, where a silent worker is presumed dead)."
        ),
    )

    objects = AttemptQuerySet.as_manager()

    class Meta:
        verbose_name = _("step attempt")
        verbose_name_plural = _("step attempts")
        ordering = ["number"]
        indexes = [
            # The dead-worker check reads only running attempts, a small set.
            models.Index(
                fields=["heartbeat_at"],
                name="squidmesh_attempt_heartbeat",
                condition=Q(status=AttemptStatus.RUNNING),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["step_run", "number"], name="squidmesh_attempt_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} ({self.status})"

    @property
    def duration(self) -> timedelta | None:
        return self.finished_at - self.started_at if self.finished_at else None


class CronTickFailure(models.Model):
    """A cron tick that could not start its run (kept so operators see failed starts)."""

    workflow = models.CharField(_("workflow"), max_length=200)
    trigger = models.CharField(_("trigger"), max_length=100)
    intended_at = models.DateTimeField(
        _("intended fire time"), help_text=_("The tick's scheduled time (its identity).")
    )
    error = models.JSONField(
        _("error"),
        encoder=DjangoJSONEncoder,
        help_text=_("Why the run could not start: type, message and per-field errors."),
    )
    occurred_at = models.DateTimeField(_("occurred"), default=timezone.now)

    class Meta:
        verbose_name = _("failed cron tick")
        verbose_name_plural = _("failed cron ticks")
        ordering = ["-intended_at", "-id"]
        indexes = [
            models.Index(
                fields=["workflow", "trigger", "-intended_at"], name="squidmesh_crontick_latest"
            ),
        ]
        constraints = [
            # A tick delivered twice records one failure.
            models.UniqueConstraint(
                fields=["workflow", "trigger", "intended_at"], name="squidmesh_crontick_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow}:{self.trigger} at {self.intended_at.isoformat()}"


class RunEvent(models.Model):
    """One entry of a run's audit trail: an operator action or a system intervention."""

    Kind = EventKind
    Source = EventSource

    run = models.ForeignKey(
        WorkflowRun, verbose_name=_("run"), on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(_("kind"), max_length=40, choices=EventKind.choices)
    actor = models.CharField(
        _("actor"),
        max_length=200,
        help_text=_("A username, `cli:<os user>` for the commands, or `system`."),
    )
    source = models.CharField(_("source"), max_length=20, choices=EventSource.choices)
    reason = models.TextField(_("reason"), blank=True)
    data = models.JSONField(
        _("data"),
        default=dict,
        blank=True,
        encoder=DjangoJSONEncoder,
        help_text=_("Details of the event, e.g. the id of the replay a replay started."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("run event")
        verbose_name_plural = _("run events")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["run", "created_at"], name="squidmesh_event_run")]

    def __str__(self) -> str:
        return f"{self.kind} by {self.actor} ({self.source})"


class OutboxMessage(models.Model):
    """A dispatch waiting to be handed to a broker that cannot join squidmesh's transactions.

    Written in the transaction of the state change that dispatches it, so it
    exists exactly when that change committed; the relay
    (`squidmesh.runtime.relay`) enqueues it once due and deletes it.
    """

    id = models.BigAutoField(primary_key=True)
    run_id = models.UUIDField(_("run"))
    workflow = models.CharField(_("workflow"), max_length=200)
    step = models.CharField(_("step"), max_length=200)
    attempt = models.PositiveIntegerField(_("attempt number"))
    timeout = models.FloatField(
        _("timeout"), null=True, blank=True, help_text=_("The step's own timeout, in seconds.")
    )
    cluster = models.CharField(
        _("cluster"),
        max_length=100,
        null=True,
        blank=True,
        help_text=_("django-q2 cluster (queue) name; empty means the default cluster."),
    )
    due_at = models.DateTimeField(_("due"), help_text=_("Not handed to the broker before this."))
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    failed_handovers = models.PositiveIntegerField(
        _("failed hand-overs"), default=0, help_text=_("Times the broker refused the message.")
    )
    last_error = models.TextField(_("last hand-over error"), blank=True)

    objects = OutboxQuerySet.as_manager()

    class Meta:
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox messages")
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["due_at", "id"], name="squidmesh_outbox_due")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.step}#{self.attempt} due {self.due_at.isoformat()}"

    def as_dispatch(self) -> Dispatch:
        """Return the `Dispatch` this message carries (due now: the relay sends it when due)."""
        from squidmesh.runtime.dispatcher import Dispatch

        return Dispatch(
            run_id=str(self.run_id),
            workflow=self.workflow,
            step=self.step,
            attempt=self.attempt,
            timeout=self.timeout,
        )
