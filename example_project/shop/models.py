"""The example domain: orders that workflows fulfil."""

from django.db import models


class Order(models.Model):
    reference = models.CharField(max_length=50, unique=True)
    amount_cents = models.PositiveIntegerField()
    status = models.CharField(max_length=20, default="new")
    gateway_calls = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.reference
