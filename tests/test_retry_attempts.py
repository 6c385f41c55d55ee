import pytest

import squidmesh
from squidmesh.testing import drain


@pytest.mark.django_db
def test_retry__third_attempt_is_dispatched_after_the_second_fails():
    # Regression: the retry after attempt 2 re-dispatched attempt 2, which
    # was then skipped as stale, leaving the run `retrying` forever.
    run = squidmesh.start_run("tests.flaky", {"fail_times": 2})

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk, include_history=True)
    assert done.status == "completed"
    assert done.context == {"flaky_ok_on": 3}
    assert [(a.number, a.status) for a in done.history[0].attempts.all()] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
