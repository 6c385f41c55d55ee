"""Where the last task of a raw django-q2 chain records when it finished (latency only)."""

from django.db import models


class ChainFinish(models.Model):
    chain = models.CharField(max_length=64, unique=True)
    finished = models.FloatField(help_text="time.time() in the worker after the last task")
