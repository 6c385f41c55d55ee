"""Brokers for tests that need to catch a relay in the middle of a batch."""

import time

from django_q.brokers.redis_broker import Redis


class SlowRedis(Redis):
    """The Redis broker, 0.3 s per enqueue: a relay handing over a batch can be killed mid-way."""

    def enqueue(self, task):
        pushed = super().enqueue(task)
        time.sleep(0.3)
        return pushed
