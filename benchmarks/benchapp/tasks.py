"""Raw django-q2 side of the benchmark: a chain of 3 no-op tasks, each enqueueing the next."""

import time

from django_q.tasks import async_task

CHAIN_LENGTH = 3


def chain_step(chain: str, position: int, record: bool = False) -> None:
    """No-op task `position` of `chain`; enqueue the next one (like a workflow step would)."""
    if position < CHAIN_LENGTH:
        async_task(
            "benchmarks.benchapp.tasks.chain_step",
            chain,
            position + 1,
            record,
            q_options={"task_name": f"{chain}:{position + 1}"},
        )
    elif record:
        from benchmarks.benchapp.models import ChainFinish

        ChainFinish.objects.create(chain=chain, finished=time.time())


def start_chain(chain: str, record: bool = False) -> str:
    return async_task(
        "benchmarks.benchapp.tasks.chain_step",
        chain,
        1,
        record,
        q_options={"task_name": f"{chain}:1"},
    )
