"""A side-effect ledger written by test step bodies: proves how often a body ran."""

from django.db import models


class Execution(models.Model):
    run_id = models.UUIDField()
    step = models.CharField(max_length=200)
    attempt = models.PositiveIntegerField()
    pid = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
