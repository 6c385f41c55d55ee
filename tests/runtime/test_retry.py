"""Retry decisions: the policy's backoff, and a failure's own `retry_after`."""

import random

import pytest

from squidmesh.runtime.retry import backoff_delay, decide
from squidmesh.workflow.steps import Retry

POLICY = Retry(max_attempts=4, backoff_min=1, backoff_max=8, jitter=False)


def test_backoff__doubles_from_min_up_to_max():
    assert [backoff_delay(POLICY, n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 8]


def test_backoff__equal_jitter_keeps_at_least_half():
    jittered = Retry(max_attempts=4, backoff_min=4, backoff_max=4, jitter=True)
    delays = [backoff_delay(jittered, 1, random.Random(seed)) for seed in range(50)]
    assert all(2 <= delay <= 4 for delay in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    ("retry_after", "delay"), [(None, 2), (0.5, 2), (2, 2), (30, 30), (30.5, 30.5)]
)
def test_decide__retry_after_is_a_floor_on_the_backoff(retry_after, delay):
    decision = decide(POLICY, 2, retryable=True, retry_after=retry_after)
    assert decision.retry and decision.delay == delay


def test_decide__retry_after_does_not_grant_attempts():
    assert not decide(POLICY, 4, retryable=True, retry_after=5).retry
    assert not decide(POLICY, 1, retryable=False, retry_after=5).retry
