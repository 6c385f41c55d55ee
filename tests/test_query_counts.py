"""Query budgets of the hot paths; they must not grow with the size of the history."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

import squidmesh
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
    # SAVEPOINT, INSERT run, INSERT queue row, RELEASE (in a test transaction).
    assert count == 4, sql


def step_queries(workflow: str, payload: dict, step: str, attempt: int) -> tuple[int, list[str]]:
    run = squidmesh.start_run(workflow, payload)
    for earlier in range(1, attempt):
        execute_step(str(run.pk), step, earlier)
    return count_queries(lambda: execute_step(str(run.pk), step, attempt))


def test_execute_step__fixed_budget_that_does_not_grow_with_history():
    # claim: lock run, find step run, count positions, insert step run,
    # insert attempt, update run; body: one ledger insert; finish: lock run,
    # close attempt, update step run, update run, enqueue next; savepoints.
    first, sql = step_queries("tests.three_steps", {}, "a", 1)
    assert first <= 16, sql
    retry, sql = step_queries("tests.flaky", {"fail_times": 1}, "flaky", 2)
    assert retry <= 16, sql
    make_history(40)
    assert step_queries("tests.three_steps", {}, "a", 1)[0] == first
    assert step_queries("tests.flaky", {"fail_times": 1}, "flaky", 2)[0] == retry


@pytest.mark.parametrize("runs", [5, 60])
def test_list_runs__one_query_whatever_the_size(runs):
    for _ in range(runs):
        squidmesh.start_run("tests.three_steps", {})
    count, _ = count_queries(lambda: squidmesh.list_runs(limit=50))
    assert count == 1


@pytest.mark.parametrize("retries", [1, 3])
def test_inspect_run_with_history__three_queries(retries):
    run = squidmesh.start_run("tests.flaky", {"fail_times": retries - 1})
    drain(include_delayed=True)
    make_history(10)

    def inspect():
        run_with_history = squidmesh.inspect_run(run.pk, include_history=True)
        for step_run in run_with_history.history:
            list(step_run.attempts.all())

    count, sql = count_queries(inspect)
    assert count == 3, sql
