"""Query budgets of the hot paths; they must not grow with the size of the history."""

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

import squidmesh
from squidmesh.models import WorkflowRun
from squidmesh.runtime.executor import execute_step
from squidmesh.testing import drain

pytestmark = pytest.mark.django_db


def make_history(runs: int) -> None:
    for _ in range(runs):
        squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain(include_delayed=True)


def count_queries(func) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        func()
    return len(captured), [q["sql"] for q in captured.captured_queries]


@pytest.mark.parametrize("history", [0, 40])
def test_start_run__fixed_budget(history):
    make_history(history)
    count, sql = count_queries(lambda: squidmesh.start_run("tests.three_steps", {}))
    # SAVEPOINT, INSERT run, INSERT its "started" event, INSERT queue row,
    # RELEASE (in a test transaction). The event is the audit trail's record
    # of who started the run (issue 10, item 8): one INSERT, deliberately.
    assert count == 5, sql


def step_queries(workflow: str, payload: dict, step: str, attempt: int) -> tuple[int, list[str]]:
    run = squidmesh.start_run(workflow, payload)
    earlier_steps = {"b": ["a"], "c": ["a", "b"]}.get(step, [])
    for earlier in earlier_steps:
        execute_step(str(run.pk), earlier, 1)
    for earlier in range(1, attempt):
        execute_step(str(run.pk), step, earlier)
    return count_queries(lambda: execute_step(str(run.pk), step, attempt))


# Claim: one locking read (the run with its step runs counted), insert the
# step run and the attempt, and move a pending run to running. Finish: a
# compare-and-set of the run that also advances it, close the attempt,
# complete the step run, enqueue the next step. Two transactions (savepoints
# inside the test's transaction), plus the body's own ledger insert.
@pytest.mark.parametrize(
    ("workflow", "payload", "step", "attempt", "budget"),
    [
        ("tests.three_steps", {}, "a", 1, 2 + 4 + 1 + 2 + 4),  # first step: run starts
        ("tests.three_steps", {}, "b", 1, 2 + 3 + 1 + 2 + 4),  # a middle step
        ("tests.three_steps", {}, "c", 1, 2 + 3 + 1 + 2 + 3),  # last: run completes
        # A retry reads the step run and its latest attempt, updates the
        # step run instead of inserting it, and moves the run to running.
        ("tests.flaky", {"fail_times": 1}, "flaky", 2, 2 + 6 + 1 + 2 + 3),
    ],
)
def test_execute_step__exact_budget_that_does_not_grow_with_history(
    workflow, payload, step, attempt, budget
):
    count, sql = step_queries(workflow, payload, step, attempt)
    assert count == budget, sql
    make_history(40)
    assert step_queries(workflow, payload, step, attempt)[0] == budget


@override_settings(SQUIDMESH={"INLINE_STEPS": 10})
def test_execute_step_inline__one_transaction_per_further_step(monkeypatch):
    from squidmesh.runtime import delivery, executor

    monkeypatch.setattr(executor, "worker_timer_available", lambda: True)
    monkeypatch.setattr(executor, "rearm_timeout", lambda seconds: True)
    run = squidmesh.start_run("tests.three_steps", {})
    row = OrmQ.objects.get()
    delivery._remember_delivery("django_q", execute_step, {**row.task, "ack_id": row.pk})
    try:
        count, sql = count_queries(lambda: execute_step(str(run.pk), "a", 1))
    finally:
        delivery._current = None
    # a: claim (2 + 4) and body; finish a + claim b in one transaction: the
    # run, the attempt, the step run, the held queue row rewritten, the new
    # step run and attempt (2 + 6), body; the same for c; finish c (2 + 3).
    assert count == (2 + 4 + 1) + (2 + 6 + 1) * 2 + (2 + 3), sql
    assert WorkflowRun.objects.get(pk=run.pk).status == "completed"


@pytest.mark.parametrize("runs", [5, 60])
@pytest.mark.parametrize(
    "filters",
    [{}, {"status": "pending"}, {"workflow": "tests.three_steps"}, {"status": "failed"}],
)
def test_list_runs__one_query_whatever_the_size(runs, filters):
    for _ in range(runs):
        squidmesh.start_run("tests.three_steps", {})
    count, _ = count_queries(lambda: squidmesh.list_runs(limit=50, **filters))
    assert count == 1


@pytest.mark.parametrize("retries", [1, 3])
def test_inspect_run_with_history__four_queries(retries):
    run = squidmesh.start_run("tests.flaky", {"fail_times": retries - 1})
    drain(include_delayed=True)
    make_history(10)

    def inspect():
        run_with_history = squidmesh.inspect_run(run.pk, include_history=True)
        for step_run in run_with_history.history:
            list(step_run.attempts.all())

    # The run, its step runs, their attempts, its events (the audit trail).
    count, sql = count_queries(inspect)
    assert count == 4, sql
