"""Retry decisions and backoff delays for failed step attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass

from squidmesh.workflow.steps import Retry

__all__ = ["RetryDecision", "backoff_delay", "decide"]


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay: float = 0.0
    reason: str = ""


def backoff_delay(policy: Retry, failed_attempt: int, rng: random.Random | None = None) -> float:
    """Return seconds to wait after failed attempt number `failed_attempt` (1-based)."""
    delay = min(policy.backoff_min * 2.0 ** (failed_attempt - 1), policy.backoff_max)
    if policy.jitter:
        # "Equal jitter": keep at least half of the delay so retries stay
        # spaced, randomise the rest so failing runs do not retry in lockstep.
        delay = delay / 2 + (rng or random).uniform(0, delay / 2)
    return delay


def decide(
    policy: Retry, failed_attempt: int, *, retryable: bool, retry_after: float | None = None
) -> RetryDecision:
    """Return whether to retry after `failed_attempt` failed, and after how long.

    `retry_after` (already capped by the caller) is the least delay the
    failed call asked for; the policy's backoff applies when it is longer.
    """
    if not retryable:
        return RetryDecision(False, reason="terminal failure")
    if failed_attempt >= policy.max_attempts:
        return RetryDecision(False, reason=f"{policy.max_attempts} attempt(s) exhausted")
    delay = backoff_delay(policy, failed_attempt)
    if retry_after is not None and retry_after > delay:
        return RetryDecision(True, delay=float(retry_after), reason="retry_after")
    return RetryDecision(True, delay=delay)
