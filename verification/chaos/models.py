"""Ledgers written outside the engine's tables: what really ran, was refused, was dispatched."""

from django.db import models
from django.utils import timezone


class BodyRun(models.Model):
    """One observed execution of a step body, written by the body itself as it starts."""

    run_id = models.UUIDField(db_index=True)
    step = models.CharField(max_length=200)
    attempt = models.PositiveIntegerField()
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, blank=True)

    def __str__(self) -> str:
        return f"{self.run_id} {self.step}#{self.attempt} (pid {self.pid})"


class DeliveryNote(models.Model):
    """A delivery the executor refused (skipped or deferred) or that hit an infrastructure fault."""

    class Kind(models.TextChoices):
        SKIPPED = "skipped"
        DEFERRED = "deferred"
        DISCARDED = "discarded"
        FAULT = "fault"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    run_id = models.CharField(max_length=64, db_index=True)
    step = models.CharField(max_length=200)
    attempt = models.PositiveIntegerField()
    reason = models.TextField()
    pid = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.kind} {self.run_id} {self.step}#{self.attempt}"


class DispatchRecord(models.Model):
    """A step dispatch, written in the transaction that dispatched it."""

    run_id = models.UUIDField(db_index=True)
    step = models.CharField(max_length=200)
    attempt = models.PositiveIntegerField()
    due = models.DateTimeField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)
    run_status = models.CharField(max_length=20, help_text="The run's status when it dispatched.")

    def __str__(self) -> str:
        return f"{self.run_id} {self.step}#{self.attempt} at {self.at}"
