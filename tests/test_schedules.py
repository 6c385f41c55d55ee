"""Cron triggers through django-q2's real scheduler: sync, ticks, failures, time zones, visibility."""

import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ, Schedule
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage

import squidmesh
from squidmesh import Step, fields, signals
from squidmesh.cron_schedules import cron_triggers, fire, sync_schedules
from squidmesh.cron_schedules.schedule_rows import FIRE, schedule_name, tick_key
from squidmesh.exceptions import UnknownTrigger, WorkflowDefinitionError
from squidmesh.models import CronTickFailure, WorkflowRun
from squidmesh.registry import WorkflowRegistry, registry
from squidmesh.testing import drain
from squidmesh.workflow.fields import NO_DEFAULT
from squidmesh.workflow.triggers import next_fire_time

PARIS = "Europe/Paris"


def report(data, ctx):
    return {"reported": data["label"], "tick": data["cron"]["intended_at"]}


class Nightly(squidmesh.Workflow):
    name = "tests.cron_nightly"
    triggers = [
        squidmesh.cron(
            "0 6 * * *",
            name="nightly",
            timezone=PARIS,
            payload={
                "label": fields.String(default="night"),
                "day": fields.String(default=squidmesh.TODAY),
            },
        ),
        squidmesh.manual("by_hand", payload={"label": fields.String(default="hand")}),
    ]
    report = Step(report)


class EveryMinute(squidmesh.Workflow):
    name = "tests.cron_minutely"
    triggers = [
        squidmesh.cron("* * * * *", name="tick", payload={"label": fields.String(default="minute")})
    ]
    report = Step(report)


class Fragile(squidmesh.Workflow):
    """Valid when declared; tests then break its payload the way a bad deploy would."""

    name = "tests.cron_fragile"
    triggers = [
        squidmesh.cron("* * * * *", name="tick", payload={"needed": fields.String(default="x")})
    ]
    report = Step(report)


TEST_WORKFLOWS = [Nightly, EveryMinute, Fragile]


def registry_of(*workflows):
    local = WorkflowRegistry()
    for workflow in workflows:
        local.register(workflow)
    return local


def redefine(name, expression, zone="UTC", trigger="tick"):
    """Return a new class with the same workflow name and a different cron trigger."""
    return type(
        "Redefined",
        (squidmesh.Workflow,),
        {
            "__module__": __name__,
            "name": name,
            "triggers": [squidmesh.cron(expression, name=trigger, timezone=zone)],
            "report": Step(report),
        },
    )


@pytest.fixture
def registered(transactional_db, settings):
    """The test workflows in the global registry, the only ones activated for cron."""
    for workflow in TEST_WORKFLOWS:
        registry.register(workflow)
    settings.SQUIDMESH = {
        **settings.SQUIDMESH,
        "CRON_WORKFLOWS": [workflow.name for workflow in TEST_WORKFLOWS],
    }
    sync_schedules()
    yield
    for workflow in TEST_WORKFLOWS:
        registry.unregister(workflow)


@pytest.fixture
def broken_payload():
    """Make Fragile's cron payload fail validation at tick time (a required field, no default)."""
    field = Fragile.triggers[0].payload.declared_fields["needed"]
    field.default, field.required = NO_DEFAULT, True
    yield
    field.default, field.required = "x", False


def schedule_of(workflow, trigger):
    return Schedule.objects.get(name=schedule_name(workflow, trigger))


def make_due(workflow, trigger, minutes_ago=1):
    """Put a schedule's next run in the past (no clock mocking); return that intended time."""
    intended = (timezone.now() - timedelta(minutes=minutes_ago)).replace(microsecond=0)
    Schedule.objects.filter(name=schedule_name(workflow, trigger)).update(next_run=intended)
    return intended


def run_scheduler():
    scheduler(broker=get_broker())


def queued_ticks():
    return [
        task
        for task in (SignedPackage.loads(row.payload) for row in OrmQ.objects.all())
        if task["func"] == FIRE
    ]


def cron_runs(workflow):
    return list(WorkflowRun.objects.filter(workflow=workflow).order_by("created_at"))


# --- sync ---------------------------------------------------------------------


def test_sync__creates_one_cron_schedule_per_trigger_with_next_run_in_its_zone(db):
    before = timezone.now()
    result = sync_schedules(registry=registry_of(Nightly, EveryMinute))
    assert sorted(result.created) == ["tests.cron_minutely:tick", "tests.cron_nightly:nightly"]
    nightly = schedule_of("tests.cron_nightly", "nightly")
    assert nightly.func == FIRE
    assert nightly.schedule_type == Schedule.CRON
    assert nightly.cron == "0 6 * * *"
    assert nightly.repeats == -1
    assert nightly.intended_date_kwarg == "intended"
    assert nightly.cluster is None
    assert eval(nightly.kwargs) == {
        "workflow": "tests.cron_nightly",
        "trigger": "nightly",
        "timezone": PARIS,
    }
    # 06:00 in Paris (04:00 or 05:00 UTC), not 06:00 in the cluster's UTC.
    assert nightly.next_run == next_fire_time("0 6 * * *", PARIS, before)
    local = nightly.next_run.astimezone(ZoneInfo(PARIS))
    assert (local.hour, local.minute) == (6, 0)
    assert nightly.next_run.astimezone(UTC).hour in (4, 5)
    # The manual trigger gets no schedule.
    assert Schedule.objects.filter(name__contains="by_hand").count() == 0


def test_sync__second_sync_changes_nothing(db):
    local = registry_of(Nightly)
    sync_schedules(registry=local)
    before = list(Schedule.objects.values().order_by("pk"))
    result = sync_schedules(registry=local)
    assert result.unchanged == ["tests.cron_nightly:nightly"]
    assert not result.changed
    assert list(Schedule.objects.values().order_by("pk")) == before


def test_sync__changed_expression_updates_the_schedule_in_place(db):
    sync_schedules(registry=registry_of(EveryMinute))
    original = schedule_of("tests.cron_minutely", "tick")
    now = timezone.now()
    result = sync_schedules(registry=registry_of(redefine("tests.cron_minutely", "15 3 * * *")))
    assert result.updated == ["tests.cron_minutely:tick"]
    updated = schedule_of("tests.cron_minutely", "tick")
    assert updated.pk == original.pk
    assert updated.cron == "15 3 * * *"
    assert updated.next_run == next_fire_time("15 3 * * *", "UTC", now)


def test_sync__changed_time_zone_updates_kwargs_and_next_run(db):
    sync_schedules(registry=registry_of(redefine("tests.tz", "0 9 * * *", "UTC")))
    result = sync_schedules(registry=registry_of(redefine("tests.tz", "0 9 * * *", "Asia/Tokyo")))
    assert result.updated == ["tests.tz:tick"]
    schedule = schedule_of("tests.tz", "tick")
    assert eval(schedule.kwargs)["timezone"] == "Asia/Tokyo"
    assert schedule.next_run.astimezone(UTC).hour == 0  # 09:00 JST


def test_sync__removed_trigger_or_workflow_removes_its_schedule(db):
    sync_schedules(registry=registry_of(Nightly, EveryMinute))
    result = sync_schedules(registry=registry_of(Nightly))
    assert result.removed == ["tests.cron_minutely:tick"]
    assert not Schedule.objects.filter(name=schedule_name("tests.cron_minutely", "tick")).exists()
    # The same name, the trigger renamed: old schedule out, new one in.
    result = sync_schedules(
        registry=registry_of(redefine("tests.cron_nightly", "0 6 * * *", PARIS, "dawn"))
    )
    assert result.removed == ["tests.cron_nightly:nightly"]
    assert result.created == ["tests.cron_nightly:dawn"]


def test_sync__never_touches_schedules_squidmesh_does_not_own(db):
    theirs = [
        Schedule.objects.create(
            name="reports", func="app.tasks.report", schedule_type=Schedule.CRON, cron="0 1 * * *"
        ),
        # Calls our entry point but was made by hand: no `squidmesh:` name.
        Schedule.objects.create(
            name="by hand", func=FIRE, schedule_type=Schedule.CRON, cron="0 1 * * *"
        ),
        # Our prefix but another function.
        Schedule.objects.create(
            name="squidmesh:lookalike", func="app.tasks.other", schedule_type=Schedule.MINUTES
        ),
    ]
    before = {s.pk: s.next_run for s in theirs}
    sync_schedules(registry=registry_of(Nightly))
    sync_schedules(registry=registry_of())
    after = {s.pk: s.next_run for s in Schedule.objects.filter(pk__in=before)}
    assert after == before


def test_sync__duplicate_and_unreadable_owned_schedules_are_removed(db):
    local = registry_of(EveryMinute)
    sync_schedules(registry=local)
    original = schedule_of("tests.cron_minutely", "tick")
    copy = Schedule.objects.get(pk=original.pk)
    copy.pk = None
    copy.save()
    Schedule.objects.create(
        name="squidmesh:garbage",
        func=FIRE,
        kwargs="not python(",
        schedule_type=Schedule.CRON,
        cron="* * * * *",
    )
    result = sync_schedules(registry=local)
    assert len(result.removed) == 2
    assert list(Schedule.objects.filter(func=FIRE).values_list("pk", flat=True)) == [original.pk]


def test_sync__settings_opt_workflows_in_and_out(db, settings):
    local = registry_of(Nightly, EveryMinute)
    settings.SQUIDMESH = {**settings.SQUIDMESH, "CRON_WORKFLOWS": ["tests.cron_nightly"]}
    assert sync_schedules(registry=local).created == ["tests.cron_nightly:nightly"]
    settings.SQUIDMESH = {
        **settings.SQUIDMESH,
        "CRON_WORKFLOWS": None,
        "CRON_EXCLUDE": ["tests.cron_nightly"],
    }
    result = sync_schedules(registry=local)
    assert result.created == ["tests.cron_minutely:tick"]
    assert result.removed == ["tests.cron_nightly:nightly"]


def test_sync__dry_run_reports_and_writes_nothing(db):
    before = list(Schedule.objects.values().order_by("pk"))
    result = sync_schedules(registry=registry_of(Nightly), dry_run=True)
    assert result.created == ["tests.cron_nightly:nightly"]
    assert list(Schedule.objects.values().order_by("pk")) == before


def test_sync__long_names_fit_django_q2s_name_column_and_stay_distinct(db):
    long = "tests." + "x" * 120
    first, second = redefine(long + "a", "* * * * *"), redefine(long + "b", "* * * * *")
    sync_schedules(registry=registry_of(first, second))
    names = set(Schedule.objects.filter(func=FIRE).values_list("name", flat=True))
    assert {schedule_name(long + "a", "tick"), schedule_name(long + "b", "tick")} <= names
    assert all(len(name) <= 100 for name in names)


def test_migrate__syncs_the_schedules_and_activates_the_example_nightly_report(db):
    Schedule.objects.filter(func=FIRE).delete()
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    nightly = schedule_of("shop.daily_report", "nightly")
    assert nightly.cron == "0 6 * * *"
    assert eval(nightly.kwargs)["timezone"] == PARIS
    [info] = [i for i in cron_triggers() if i.workflow == "shop.daily_report"]
    assert info.state == "active"
    assert info.next_fire_time == nightly.next_run


# --- ticks through the real scheduler -------------------------------------------


def test_due_schedule__starts_exactly_one_run_with_defaults_and_tick_metadata(registered):
    intended = make_due("tests.cron_nightly", "nightly")
    run_scheduler()
    [task] = queued_ticks()
    assert task["kwargs"]["intended"] == intended.isoformat()
    assert drain() == 2  # the tick, then the run's one step
    [run] = cron_runs("tests.cron_nightly")
    assert run.trigger == "nightly"
    assert run.payload == {"label": "night", "day": timezone.localdate().isoformat()}
    assert run.idempotency_key == tick_key("nightly", intended)
    metadata = WorkflowRun.objects.get(pk=run.pk).context["cron"]
    assert metadata["trigger"] == "nightly"
    assert metadata["expression"] == "0 6 * * *"
    assert metadata["timezone"] == PARIS
    assert metadata["intended_at"] == intended.isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(metadata["started_at"]) >= intended
    run.refresh_from_db()
    assert run.status == "completed"
    assert run.context["reported"] == "night"
    assert run.context["tick"] == metadata["intended_at"]


def test_due_schedule__is_re_armed_for_the_next_tick_in_the_triggers_zone(registered):
    make_due("tests.cron_nightly", "nightly")
    before = timezone.now()
    run_scheduler()
    # django-q2 alone would say 06:00 UTC (Q_CLUSTER time zone); the trigger says Paris.
    schedule = schedule_of("tests.cron_nightly", "nightly")
    assert schedule.next_run == next_fire_time("0 6 * * *", PARIS, before)
    assert schedule.next_run.astimezone(UTC).hour in (4, 5)
    assert schedule.repeats == -1


def test_scheduler_twice__second_pass_finds_nothing_due(registered):
    make_due("tests.cron_minutely", "tick")
    run_scheduler()
    run_scheduler()
    assert len(queued_ticks()) == 1
    drain()
    assert len(cron_runs("tests.cron_minutely")) == 1


def test_tick_delivered_twice__starts_one_run(registered):
    make_due("tests.cron_minutely", "tick")
    run_scheduler()
    [row] = OrmQ.objects.all()
    OrmQ.objects.create(key=row.key, payload=row.payload, lock=row.lock)  # redelivery
    assert drain() == 3  # two ticks, one step
    [run] = cron_runs("tests.cron_minutely")
    assert run.status == "completed"


def test_fire_twice_with_the_same_intended_time__returns_the_same_run(registered):
    intended = "2026-05-04T10:00:00+00:00"
    first = fire("tests.cron_minutely", "tick", intended=intended)
    second = fire("tests.cron_minutely", "tick", intended=intended)
    third = fire("tests.cron_minutely", "tick", intended="2026-05-04T10:01:00+00:00")
    assert first == second != third
    assert len(cron_runs("tests.cron_minutely")) == 2


@pytest.mark.postgres
def test_two_clusters_scheduling_at_once__queue_one_tick(registered):
    make_due("tests.cron_minutely", "tick")
    barrier = threading.Barrier(2)
    errors = []

    def cluster_scheduler():
        try:
            barrier.wait(10)
            run_scheduler()
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=cluster_scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert len(queued_ticks()) == 1


@pytest.mark.postgres
def test_same_tick_fired_by_two_workers_at_once__starts_one_run(registered):
    barrier = threading.Barrier(4)
    results = []

    def worker():
        try:
            barrier.wait(10)
            results.append(
                fire("tests.cron_minutely", "tick", intended="2026-05-04T10:00:00+00:00")
            )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4
    assert len(set(results)) == 1
    assert len(cron_runs("tests.cron_minutely")) == 1


# --- robustness -------------------------------------------------------------------


def test_invalid_payload__is_recorded_and_does_not_block_the_other_schedules(
    registered, broken_payload, caplog, request
):
    fragile_tick = make_due("tests.cron_fragile", "tick")
    make_due("tests.cron_minutely", "tick")
    run_scheduler()
    # One batch queued both ticks: the bad one did not roll the batch back.
    assert sorted(task["kwargs"]["workflow"] for task in queued_ticks()) == [
        "tests.cron_fragile",
        "tests.cron_minutely",
    ]
    failed_ticks = []

    def on_failed_tick(sender, **kwargs):
        failed_ticks.append((sender, kwargs))

    signals.cron_tick_failed.connect(on_failed_tick)
    request.addfinalizer(lambda: signals.cron_tick_failed.disconnect(on_failed_tick))
    with caplog.at_level(logging.ERROR, logger="squidmesh.cron"):
        drain()
    assert cron_runs("tests.cron_fragile") == []
    [minutely] = cron_runs("tests.cron_minutely")
    assert minutely.status == "completed"
    failure = CronTickFailure.objects.get()
    assert (failure.workflow, failure.trigger, failure.intended_at) == (
        "tests.cron_fragile",
        "tick",
        fragile_tick,
    )
    assert failure.error["type"] == "InvalidPayload"
    assert failure.error["errors"] == {"needed": "this field is required"}
    [record] = [r for r in caplog.records if r.name == "squidmesh.cron"]
    assert record.workflow == "tests.cron_fragile"
    assert record.error["errors"] == {"needed": "this field is required"}
    # The schedule keeps going, and a redelivered failing tick records one failure.
    assert schedule_of("tests.cron_fragile", "tick").next_run > timezone.now()
    assert fire("tests.cron_fragile", "tick", intended=fragile_tick.isoformat()) is None
    assert CronTickFailure.objects.count() == 1
    [info] = [i for i in cron_triggers() if i.workflow == "tests.cron_fragile"]
    assert info.last_failure["error"]["type"] == "InvalidPayload"
    # One signal for the tick, however often it was delivered.
    assert failed_ticks == [
        (
            "tests.cron_fragile",
            {
                "signal": signals.cron_tick_failed,
                "workflow": "tests.cron_fragile",
                "trigger": "tick",
                "intended_at": fragile_tick.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "error": failure.error,
            },
        )
    ]


def test_corrupted_owned_schedule__does_not_roll_back_the_schedulers_batch(registered, caplog):
    # A time zone no one can load: re-arming it fails inside django-q2's transaction.
    Schedule.objects.filter(name=schedule_name("tests.cron_fragile", "tick")).update(
        kwargs=repr(
            {"workflow": "tests.cron_fragile", "trigger": "tick", "timezone": "Mars/Olympus"}
        )
    )
    make_due("tests.cron_fragile", "tick")
    make_due("tests.cron_minutely", "tick")
    with caplog.at_level(logging.ERROR, logger="squidmesh.cron"):
        run_scheduler()
    assert len(queued_ticks()) == 2
    assert "Could not compute the next run" in caplog.text
    # django-q2's own (cluster-zone) value was kept: the schedule still moves on.
    assert schedule_of("tests.cron_fragile", "tick").next_run > timezone.now()


def test_tick_for_a_workflow_no_longer_registered__is_recorded_not_raised(registered):
    registry.unregister(EveryMinute)
    try:
        make_due("tests.cron_minutely", "tick")
        run_scheduler()
        drain()
    finally:
        registry.register(EveryMinute)
    failure = CronTickFailure.objects.get()
    assert failure.error["type"] == "UnknownWorkflow"
    assert WorkflowRun.objects.count() == 0


def test_tick_for_a_trigger_that_is_no_longer_cron__is_recorded(registered):
    assert fire("tests.cron_nightly", "by_hand", intended="2026-01-01T00:00:00+00:00") is None
    assert "not a cron trigger" in CronTickFailure.objects.get().error["message"]


def test_tick_of_an_opted_out_workflow__starts_nothing(registered, settings):
    settings.SQUIDMESH = {**settings.SQUIDMESH, "CRON_EXCLUDE": ["tests.cron_minutely"]}
    assert fire("tests.cron_minutely", "tick", intended="2026-01-01T00:00:00+00:00") is None
    assert WorkflowRun.objects.count() == 0
    assert CronTickFailure.objects.count() == 0


def test_tick_with_an_unreadable_intended_time__is_recorded(registered):
    assert fire("tests.cron_minutely", "tick", intended="yesterday") is None
    assert "Bad intended time" in CronTickFailure.objects.get().error["message"]


def test_required_field_without_default_on_a_cron_trigger__is_a_definition_error():
    with pytest.raises(WorkflowDefinitionError) as caught:
        redefine_with_payload({"recipient": fields.String()})
    assert [p[0] for p in caught.value.problems] == ["squidmesh.E016"]
    assert "'recipient'" in str(caught.value)
    # Optional fields without a default are fine.
    redefine_with_payload({"recipient": fields.String(required=False)})


def redefine_with_payload(payload):
    return type(
        "WithPayload",
        (squidmesh.Workflow,),
        {
            "__module__": __name__,
            "name": "tests.with_payload",
            "triggers": [squidmesh.cron("0 1 * * *", payload=payload)],
            "report": Step(report),
        },
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 30 2 *", "never fires"),
        ("0 0 1 1 * 0 2027", "has a year field"),
        ("0 0 * * * " + "0," * 60 + "0", "longer than"),
        ("61 * * * *", "is not valid"),
    ],
)
def test_expression_that_would_break_the_scheduler_batch__is_a_definition_error(
    expression, message
):
    with pytest.raises(WorkflowDefinitionError) as caught:
        type(
            "Bad",
            (squidmesh.Workflow,),
            {"__module__": __name__, "triggers": [squidmesh.cron(expression)], "a": Step(report)},
        )
    assert caught.value.problems[0][0] == "squidmesh.E008"
    assert message in caught.value.problems[0][1]


def test_check__cron_settings_with_wrong_types_or_unknown_names(settings):
    from squidmesh.checks import check_cron_settings

    settings.SQUIDMESH = {
        **settings.SQUIDMESH,
        "CRON_WORKFLOWS": "shop.daily_report",
        "CRON_EXCLUDE": ["shop.nope"],
    }
    messages = {m.id: m.msg for m in check_cron_settings()}
    assert "CRON_WORKFLOWS" in messages["squidmesh.E014"]
    assert "'shop.nope'" in messages["squidmesh.W004"]
    settings.SQUIDMESH = {
        **settings.SQUIDMESH,
        "CRON_WORKFLOWS": ["shop.daily_report"],
        "CRON_EXCLUDE": [],
    }
    assert check_cron_settings() == []


# --- time zones and DST ---------------------------------------------------------------


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def fire_times(expression, zone, start, count):
    times, moment = [], start
    for _ in range(count):
        moment = next_fire_time(expression, zone, moment)
        times.append(moment.astimezone(UTC))
    return times


def test_dst__daily_tick_keeps_local_time_across_both_changes():
    # Paris: UTC+1 until 2026-03-29, UTC+2 until 2026-10-25, then UTC+1.
    spring = fire_times("0 6 * * *", PARIS, utc(2026, 3, 27), 3)
    assert spring == [utc(2026, 3, 27, 5), utc(2026, 3, 28, 5), utc(2026, 3, 29, 4)]
    autumn = fire_times("0 6 * * *", PARIS, utc(2026, 10, 24), 2)
    assert autumn == [utc(2026, 10, 24, 4), utc(2026, 10, 25, 5)]


def test_dst__time_skipped_in_spring_fires_once_at_the_end_of_the_gap():
    # 02:30 does not exist on 2026-03-29 (02:00 -> 03:00): the tick fires at 03:00 CEST.
    assert fire_times("30 2 * * *", PARIS, utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1),
        utc(2026, 3, 30, 0, 30),
    ]


def test_dst__time_repeated_in_autumn_fires_at_both_instants():
    # 02:30 happens twice on 2026-10-25: at 02:30 CEST (00:30Z) and 02:30 CET (01:30Z).
    assert fire_times("30 2 * * *", PARIS, utc(2026, 10, 24, 12), 3) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    # Re-arming right after the first tick (as the scheduler does) finds the second.
    assert next_fire_time("30 2 * * *", PARIS, utc(2026, 10, 25, 0, 30, 20)) == utc(
        2026, 10, 25, 1, 30
    )


def test_dst__each_tick_across_the_changes_starts_one_run_with_its_local_time(registered, settings):
    Repeated = redefine("tests.cron_dst", "30 2 * * *", PARIS)
    settings.SQUIDMESH = {**settings.SQUIDMESH, "CRON_WORKFLOWS": ["tests.cron_dst"]}
    registry.register(Repeated)
    try:
        ticks = fire_times("30 2 * * *", PARIS, utc(2026, 3, 28, 12), 1) + fire_times(
            "30 2 * * *", PARIS, utc(2026, 10, 24, 12), 2
        )
        for tick in ticks + ticks:  # every tick delivered twice
            fire("tests.cron_dst", "tick", intended=tick.isoformat())
        locals_ = [run.context["cron"]["intended_local"] for run in cron_runs("tests.cron_dst")]
    finally:
        registry.unregister(Repeated)
    assert sorted(locals_) == [
        "2026-03-29T03:00:00+02:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T02:30:00+02:00",
    ]


def test_saving_an_owned_schedule__keeps_the_next_run_in_the_triggers_zone(db):
    sync_schedules(registry=registry_of(redefine("tests.tokyo", "0 9 * * *", "Asia/Tokyo")))
    schedule = schedule_of("tests.tokyo", "tick")
    schedule.next_run = timezone.now() + timedelta(days=3)  # e.g. django-q2's own guess
    schedule.save()
    schedule.refresh_from_db()
    assert schedule.next_run == next_fire_time("0 9 * * *", "Asia/Tokyo", timezone.now())
    # A next run in the past (an operator's "run now") is left alone.
    past = timezone.now() - timedelta(minutes=5)
    schedule.next_run = past
    schedule.save()
    schedule.refresh_from_db()
    assert schedule.next_run == past


# --- visibility ------------------------------------------------------------------------


def test_cron_triggers__states_next_fire_time_last_runs_and_failure(
    registered, broken_payload, settings
):
    Schedule.objects.create(
        name=schedule_name("tests.gone", "old"),
        func=FIRE,
        kwargs=repr({"workflow": "tests.gone", "trigger": "old", "timezone": "UTC"}),
        schedule_type=Schedule.CRON,
        cron="0 1 * * *",
    )
    ticks = [f"2026-05-04T10:0{minute}:00+00:00" for minute in range(4)]
    for tick in ticks:
        fire("tests.cron_minutely", "tick", intended=tick)
    fire("tests.cron_fragile", "tick", intended=ticks[0])
    fire("tests.cron_fragile", "tick", intended=ticks[1])
    Schedule.objects.filter(name=schedule_name("tests.cron_nightly", "nightly")).update(
        cron="1 1 * * *"
    )
    settings.SQUIDMESH = {**settings.SQUIDMESH, "CRON_EXCLUDE": ["tests.cron_fragile"]}
    Schedule.objects.filter(name=schedule_name("tests.cron_fragile", "tick")).delete()

    infos = {(i.workflow, i.trigger): i for i in cron_triggers(runs=2)}
    minutely = infos[("tests.cron_minutely", "tick")]
    assert minutely.state == "active"
    assert minutely.next_fire_time == schedule_of("tests.cron_minutely", "tick").next_run
    assert [run["intended_at"] for run in minutely.last_runs] == [
        "2026-05-04T10:03:00Z",
        "2026-05-04T10:02:00Z",
    ]
    assert minutely.last_failure is None
    assert infos[("tests.cron_nightly", "nightly")].state == "outdated"
    fragile = infos[("tests.cron_fragile", "tick")]
    assert fragile.state == "disabled"
    assert fragile.next_fire_time is None
    assert fragile.last_failure["intended_at"] == datetime.fromisoformat(ticks[1])
    assert infos[("tests.gone", "old")].state == "orphaned"
    assert infos[("shop.daily_report", "nightly")].state == "disabled"  # not in CRON_WORKFLOWS
    json.dumps([info.as_dict() for info in infos.values()])


def test_cron_triggers__three_queries_whatever_the_number_of_triggers(
    registered, django_assert_max_num_queries
):
    for minute in range(5):
        fire("tests.cron_minutely", "tick", intended=f"2026-05-04T10:0{minute}:00+00:00")
        fire("tests.cron_nightly", "nightly", intended=f"2026-05-0{minute + 1}T04:00:00+00:00")
    with django_assert_max_num_queries(3):
        infos = cron_triggers(runs=3)
    assert sum(len(info.last_runs) for info in infos) == 6


def test_cron_triggers__last_runs_are_its_ticks_not_runs_started_by_hand(
    registered, django_assert_max_num_queries
):
    tick = fire("tests.cron_nightly", "nightly", intended="2026-05-04T04:00:00+00:00")
    # Started by hand on the cron trigger itself, after the tick: not the schedule's run.
    squidmesh.start_run("tests.cron_nightly", {}, trigger="nightly")
    squidmesh.start_run("tests.cron_nightly", {}, trigger="nightly", idempotency_key="by-hand")
    squidmesh.start_run("tests.cron_minutely", {}, trigger="tick")

    with django_assert_max_num_queries(3):
        infos = {(i.workflow, i.trigger): i for i in cron_triggers(runs=3)}

    assert [run["id"] for run in infos[("tests.cron_nightly", "nightly")].last_runs] == [tick]
    assert infos[("tests.cron_minutely", "tick")].last_runs == []


def test_start_without_trigger__never_defaults_to_a_cron_trigger(registered):
    run = squidmesh.start_run("tests.cron_nightly", {})

    assert run.trigger == "by_hand"  # declared after the cron trigger
    assert run.context == {}


def test_start_without_trigger__of_a_cron_only_workflow_names_the_cron_triggers(registered):
    with pytest.raises(UnknownTrigger) as raised:
        squidmesh.start_run("tests.cron_minutely", {})

    assert "only triggers are cron triggers (tick)" in str(raised.value)
    assert "Name the trigger explicitly" in str(raised.value)
    assert not WorkflowRun.objects.exists()
    assert squidmesh.start_run("tests.cron_minutely", {}, trigger="tick").trigger == "tick"


def test_definition__a_cron_trigger_cannot_be_the_default():
    with pytest.raises(WorkflowDefinitionError, match=r"squidmesh\.E011.*default=True"):
        type(
            "CronDefault",
            (squidmesh.Workflow,),
            {
                "__module__": __name__,
                "triggers": [
                    squidmesh.cron("0 1 * * *", default=True),
                    squidmesh.manual(),
                ],
                "a": Step(report),
            },
        )


def test_command_start_without_trigger__uses_the_manual_trigger(registered, capsys):
    call_command("squidmesh", "start", "shop.daily_report")

    assert "(trigger on_demand)" in capsys.readouterr().out
    assert list(WorkflowRun.objects.values_list("trigger", flat=True)) == ["on_demand"]


# --- the command ------------------------------------------------------------------------


def test_command_sync__prints_what_changed(registered, capsys):
    Schedule.objects.filter(name=schedule_name("tests.cron_nightly", "nightly")).delete()
    call_command("squidmesh_cron", "sync", "--dry-run")
    assert "would be created tests.cron_nightly:nightly" in capsys.readouterr().out
    call_command("squidmesh_cron", "sync")
    out = capsys.readouterr().out
    assert "created tests.cron_nightly:nightly" in out
    assert "1 created, 0 updated" in out


def test_command_list__table_and_json(registered, capsys):
    fire("tests.cron_minutely", "tick", intended="2026-05-04T10:00:00+00:00")
    call_command("squidmesh_cron", "list")
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "WORKFLOW",
        "TRIGGER",
        "EXPRESSION",
        "TIME",
        "ZONE",
        "STATE",
        "NEXT",
        "FIRE",
        "TIME",
    ]
    assert "tests.cron_nightly  nightly" in out.replace("   ", "  ")
    assert "CET" in out or "CEST" in out
    assert "(tick 2026-05-04T10:00:00Z" in out
    call_command("squidmesh_cron", "list", "--json")
    data = {(i["workflow"], i["trigger"]): i for i in json.loads(capsys.readouterr().out)}
    assert (
        data[("tests.cron_minutely", "tick")]["last_runs"][0]["intended_at"]
        == "2026-05-04T10:00:00Z"
    )
    assert data[("tests.cron_nightly", "nightly")]["state"] == "active"


def test_command__bad_arguments_exit_with_a_message(db):
    with pytest.raises(CommandError, match="--runs"):
        call_command("squidmesh_cron", "list", "--runs", "-1")
    with pytest.raises(CommandError, match="--database"):
        call_command("squidmesh_cron", "sync", "--database", "nope")


def test_schedule_rows_func__still_imports_through_the_schedules_shim():
    # Schedule rows in existing databases store this dotted path as their func.
    from django.utils.module_loading import import_string

    assert FIRE == "squidmesh.schedules.fire"
    assert import_string(FIRE) is fire
