"""The audit trail: every start, cancel and replay records who, from where and why."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.models import OrmQ

import squidmesh
from squidmesh import api
from squidmesh.audit import Audit, actor_name, cli_actor
from squidmesh.cron_schedules import fire
from squidmesh.exceptions import InvalidArgument, InvalidIdempotencyKey, RunNotFound
from squidmesh.models import RunEvent, WorkflowRun
from squidmesh.recovery import recover_runs
from squidmesh.retention import prune_runs
from squidmesh.serialization import run_detail
from squidmesh.testing import drain

pytestmark = pytest.mark.django_db


def trail(run):
    return [(e.kind, e.actor, e.source, e.reason, e.data) for e in RunEvent.objects.filter(run=run)]


def test_start_run__records_a_started_event_by_system_from_the_api_by_default():
    run = squidmesh.start_run("tests.three_steps", {})

    assert trail(run) == [("started", "system", "api", "", {})]


def test_start_run__records_actor_source_and_reason(django_user_model):
    user = django_user_model.objects.create_user("alice")

    run = squidmesh.start_run(
        "tests.three_steps", {}, actor=user, source="rest", reason="customer asked"
    )

    assert trail(run) == [("started", "alice", "rest", "customer asked", {})]


def test_start_run__idempotent_repeat_records_nothing_more():
    first = squidmesh.start_run("tests.three_steps", {}, idempotency_key="k", actor="bob")
    again = squidmesh.start_run("tests.three_steps", {}, idempotency_key="k", actor="carol")

    assert again.pk == first.pk
    assert [actor for _kind, actor, *_ in trail(first)] == ["bob"]


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"actor": ""}, "actor"),
        ({"actor": 42}, "actor"),
        ({"actor": "x" * 201}, "actor"),
        ({"source": "telepathy"}, "source"),
        ({"reason": ["why"]}, "reason"),
        ({"reason": "x" * 2001}, "reason"),
    ],
)
def test_start_run__bad_audit_arguments_are_refused_and_nothing_is_stored(options, field):
    with pytest.raises(InvalidArgument) as error:
        squidmesh.start_run("tests.three_steps", {}, **options)

    assert error.value.field == field
    assert not WorkflowRun.objects.exists()
    assert not RunEvent.objects.exists()


def test_start_run__event_commits_with_the_run_or_not_at_all(monkeypatch):
    from squidmesh.state import runs

    def broken_dispatch(*args, **kwargs):
        raise RuntimeError("broker down")

    monkeypatch.setattr(
        runs, "get_dispatcher", lambda: type("D", (), {"dispatch": broken_dispatch})()
    )
    with pytest.raises(RuntimeError, match="broker down"):
        squidmesh.start_run("tests.three_steps", {})

    assert not WorkflowRun.objects.exists()
    assert not RunEvent.objects.exists()


def test_cancel_run__pending_run_records_cancelled_with_the_previous_status():
    run = squidmesh.start_run("tests.three_steps", {})

    squidmesh.cancel_run(run.pk, actor="cli:ops", source="cli", reason="wrong payload")

    assert trail(run)[-1] == (
        "cancelled",
        "cli:ops",
        "cli",
        "wrong payload",
        {"from_status": "pending"},
    )


def test_cancel_run__executing_run_records_cancel_requested_and_a_repeat_records_nothing():
    run = squidmesh.start_run("tests.slow", {})
    # What a worker holds: the run running with an attempt open.
    from squidmesh.runtime.executor import StepExecutor

    with transaction.atomic():
        StepExecutor(str(run.pk), "slow", 1)._claim()

    squidmesh.cancel_run(run.pk, actor="alice", source="admin")
    squidmesh.cancel_run(run.pk, actor="alice", source="admin")

    assert [kind for kind, *_ in trail(run)] == ["started", "cancel_requested"]
    assert trail(run)[-1][4] == {"from_status": "running"}


def test_cancel_run__refused_cancel_records_nothing():
    run = squidmesh.start_run("tests.three_steps", {})
    drain()

    with pytest.raises(squidmesh.InvalidTransition):
        squidmesh.cancel_run(run.pk, actor="alice")

    assert [kind for kind, *_ in trail(run)] == ["started"]


def test_replay_run__records_both_ends_of_the_replay():
    source = squidmesh.start_run("tests.three_steps", {})
    drain()

    replay = squidmesh.replay_run(source.pk, actor="alice", source="admin", reason="flaky API")

    assert trail(source)[-1] == (
        "replayed",
        "alice",
        "admin",
        "flaky API",
        {"replay": str(replay.pk)},
    )
    assert trail(replay) == [
        ("replay_of", "alice", "admin", "flaky API", {"source": str(source.pk)})
    ]


def test_replay_run__same_idempotency_key_starts_one_replay():
    source = squidmesh.start_run("tests.three_steps", {})

    first = api.replay_run_once(source.pk, idempotency_key="double-click")
    second = api.replay_run_once(source.pk, idempotency_key="double-click")

    assert first.started_now and not second.started_now
    assert second.run.pk == first.run.pk
    assert WorkflowRun.objects.filter(replayed_from=source).count() == 1
    assert [kind for kind, *_ in trail(source)] == ["started", "replayed"]


def test_replay_run__a_key_is_per_source_run():
    one = squidmesh.start_run("tests.three_steps", {})
    other = squidmesh.start_run("tests.three_steps", {})
    squidmesh.replay_run(one.pk, idempotency_key="k")

    with pytest.raises(InvalidIdempotencyKey, match="not a replay of run") as error:
        squidmesh.replay_run(other.pk, idempotency_key="k")

    assert error.value.field == "idempotency_key"
    assert not WorkflowRun.objects.filter(replayed_from=other).exists()


def test_replay_run__repeat_finds_the_replay_even_after_the_workflow_is_unregistered():
    source = squidmesh.start_run("tests.three_steps", {})
    first = squidmesh.replay_run(source.pk, idempotency_key="k")
    WorkflowRun.objects.filter(pk__in=[source.pk, first.pk]).update(workflow="gone.workflow")

    assert squidmesh.replay_run(source.pk, idempotency_key="k").pk == first.pk


def test_inspect_run__history_lists_the_events_oldest_first():
    source = squidmesh.start_run("tests.three_steps", {}, actor="alice")
    drain()
    squidmesh.replay_run(source.pk, actor="bob")

    detail = run_detail(
        squidmesh.inspect_run(source.pk, include_history=True), include_history=True
    )

    assert [(e["kind"], e["actor"]) for e in detail["events"]] == [
        ("started", "alice"),
        ("replayed", "bob"),
    ]
    assert detail["events"][0]["created_at"].endswith("Z")


def test_cron_tick__records_a_started_event_by_system_from_cron(settings):
    run_id = fire("shop.daily_report", "nightly", intended="2026-05-04T02:00:00+00:00")

    assert trail(WorkflowRun.objects.get(pk=run_id)) == [("started", "system", "cron", "", {})]


def test_recovery_sweep__records_each_redispatch():
    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()  # the lost delivery
    WorkflowRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    sweep = recover_runs(older_than=60)

    assert [r.redispatched for r in sweep.runs] == [True]
    assert trail(run)[-1] == ("redispatched", "system", "recovery", "", {"step": "a", "attempt": 1})


def test_recovery_sweep__dry_run_records_nothing():
    run = squidmesh.start_run("tests.three_steps", {})
    OrmQ.objects.all().delete()
    WorkflowRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    recover_runs(older_than=60, dry_run=True)

    assert [kind for kind, *_ in trail(run)] == ["started"]


def test_prune__deletes_the_events_of_pruned_runs():
    run = squidmesh.start_run("tests.three_steps", {})
    squidmesh.cancel_run(run.pk)
    WorkflowRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now() - timedelta(days=40),
        created_at=timezone.now() - timedelta(days=40),
    )

    pruned = prune_runs(timedelta(days=30))

    assert pruned.runs == 1
    assert not RunEvent.objects.exists()
    with pytest.raises(RunNotFound):
        squidmesh.inspect_run(run.pk)


def test_actor_names():
    class Anonymous:
        is_authenticated = False

    assert actor_name(Anonymous()) == "anonymous"
    assert cli_actor().startswith("cli:") and len(cli_actor()) > 4
    assert Audit.of(None).actor == "system"


def test_api_exports_resolve_run_id_and_filter_runs():
    assert {"resolve_run_id", "filter_runs"} <= set(api.__all__)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_replay_run__concurrent_double_submit_with_one_key_starts_one_replay():
    import threading

    from django.db import connections

    source = squidmesh.start_run("tests.three_steps", {})
    barrier = threading.Barrier(4)
    outcomes = []

    def replay():
        try:
            barrier.wait(10)
            outcomes.append(squidmesh.replay_run(source.pk, idempotency_key="race").pk)
        except Exception as error:  # pragma: no cover - reported by the assertion below
            outcomes.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(set(outcomes)) == 1, outcomes
    assert WorkflowRun.objects.filter(replayed_from=source).count() == 1
    assert RunEvent.objects.filter(run=source, kind="replayed").count() == 1
