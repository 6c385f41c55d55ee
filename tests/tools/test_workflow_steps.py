"""A workflow step calling HTTP through the adapter, retried by the engine (not the adapter)."""

from datetime import timedelta

import pytest

import squidmesh
from squidmesh.testing import drain, wait_for_run
from tests.testapp.models import Execution


def start_flaky_call(service, label):
    return squidmesh.start_run(
        "tests.http_call", {"url": service.url("/flaky?fail=1&status=503"), "label": label}
    )


def assert_retried_once_after_503(run, service, label):
    assert run.status == "completed"
    assert run.context == {"http_status": 200, "http_body": {"accepted": True, "seen": 2}}
    [step_run] = run.history
    first, second = step_run.attempts.all()
    message = f"POST {service.url('/flaky')} returned HTTP 503 Service Unavailable"
    assert (first.number, first.status) == (1, "failed")
    assert first.error == {
        "type": "StepFailure",
        "message": message,
        "details": {
            "adapter": "http",
            "kind": "http_status",
            "message": message,
            "details": {
                "status": 503,
                "method": "POST",
                "url": service.url("/flaky?fail=1&status=503"),
                "elapsed_ms": first.error["details"]["details"]["elapsed_ms"],
                "body": {"error": "try later", "seen": 1},
                "retry_after": 1,
            },
            "retryable": True,
        },
        "retryable": True,
        "retry_after": 1,
    }
    assert (second.number, second.status, second.error) == (2, "succeeded", None)
    # The server's Retry-After (1 s) outweighs the policy's 0.2 s backoff.
    assert second.due_at - first.finished_at >= timedelta(seconds=1)
    # Exactly one request per attempt, each saying which attempt it is.
    received = [
        r
        for r in service.received("/flaky")
        if r["headers"].get("x-squidmesh-run-id") == str(run.pk)
    ]
    assert len(received) == 2
    assert [r["headers"]["x-squidmesh-attempt"] for r in received] == ["1", "2"]
    # The receiver can de-duplicate: both attempts carry the same key.
    assert [r["headers"]["idempotency-key"] for r in received] == [f"{run.pk}:call"] * 2
    assert {r["headers"]["x-squidmesh-step"] for r in received} == {"call"}
    assert {r["headers"]["x-squidmesh-workflow"] for r in received} == {"tests.http_call"}
    assert {r["body"] for r in received} == {f'{{"label": "{label}"}}'}
    assert Execution.objects.filter(run_id=run.pk).count() == 2


@pytest.mark.django_db
def test_http_step__503_then_200_is_retried_by_the_engine_inline(service):
    run = start_flaky_call(service, "inline")

    drain(include_delayed=True)

    assert_retried_once_after_503(
        squidmesh.inspect_run(run.pk, include_history=True), service, "inline"
    )


@pytest.mark.cluster
def test_http_step__503_then_200_is_retried_by_the_engine_on_a_real_cluster(cluster, service):
    run = start_flaky_call(service, "cluster")

    done = wait_for_run(run.pk, timeout=60)

    assert_retried_once_after_503(done, service, "cluster")


@pytest.mark.django_db
def test_http_step__404_fails_the_run_without_retrying(service):
    run = squidmesh.start_run("tests.http_call", {"url": service.url("/status/404")})

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk, include_history=True)
    assert done.status == "failed"
    [attempt] = done.history[0].attempts.all()
    assert attempt.status == "failed"
    assert attempt.error["type"] == "TerminalFailure"
    assert attempt.error["retryable"] is False
    assert attempt.error["details"]["kind"] == "http_status"
    assert attempt.error["details"]["details"]["status"] == 404
    assert done.last_error == attempt.error
    assert len(service.received("/status/404")) == 1


@pytest.mark.django_db
def test_http_step__closed_port_is_retried_until_attempts_run_out(closed_port):
    url = f"http://127.0.0.1:{closed_port}/orders"
    run = squidmesh.start_run("tests.http_call", {"url": url})

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk, include_history=True)
    assert done.status == "failed"
    attempts = list(done.history[0].attempts.all())
    assert [a.status for a in attempts] == ["failed", "failed", "failed"]
    assert {a.error["message"] for a in attempts} == {f"POST {url} failed: connection refused"}
    assert {a.error["details"]["kind"] for a in attempts} == {"connection"}
    assert all(a.error["retryable"] for a in attempts)


@pytest.mark.django_db
def test_http_step__timeout_is_a_retryable_step_failure(service):
    run = squidmesh.start_run(
        "tests.http_call", {"url": service.url("/slow?seconds=2"), "timeout": 0.2}
    )

    drain(include_delayed=True)

    done = squidmesh.inspect_run(run.pk, include_history=True)
    attempts = list(done.history[0].attempts.all())
    assert done.status == "failed"
    assert len(attempts) == 3
    assert {a.error["details"]["kind"] for a in attempts} == {"timeout"}
    assert len(service.received("/slow")) == 3
