import uuid

import pytest
from django_q.models import OrmQ

import squidmesh
from squidmesh import (
    InvalidFilter,
    InvalidPayload,
    InvalidTransition,
    RunNotFound,
    UnknownTrigger,
    UnknownWorkflow,
)
from squidmesh.models import StepAttempt, StepRun, WorkflowRun
from squidmesh.registry import registry
from squidmesh.testing import drain
from tests.testapp.workflows import ThreeSteps

pytestmark = pytest.mark.django_db


def assert_nothing_persisted():
    assert WorkflowRun.objects.count() == 0
    assert OrmQ.objects.count() == 0


def test_start_run__persists_pending_run_at_entry_step_and_dispatches_it():
    run = squidmesh.start_run(ThreeSteps, {"label": "x"})
    assert run.status == "pending"
    assert run.current_step == "a"
    assert run.trigger == "manual"
    assert run.payload == {"label": "x"}
    assert OrmQ.objects.count() == 1
    task = OrmQ.objects.get().task
    # Queue messages carry identifiers only, never payload or context.
    assert task["args"] == (str(run.pk), "a", 1)
    assert task["kwargs"] == {}


def test_start_run__with_explicit_trigger_and_defaults():
    run = squidmesh.start_run(
        "shop.order_fulfilment", {"order_ref": "R1", "amount_cents": 5}, trigger="backoffice"
    )
    assert run.trigger == "backoffice"
    assert run.payload["tags"] == [] and run.payload["card"] == "ok"


def test_start_run__trigger_by_keyword():
    run = squidmesh.start_run("shop.daily_report", {}, trigger="on_demand")
    assert run.trigger == "on_demand"


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("tests.nope", {}), {}, UnknownWorkflow),
        (("tests.three_steps", {}), {"trigger": "nope"}, UnknownTrigger),
        (("tests.three_steps", {"label": 3}), {}, InvalidPayload),
        (("tests.three_steps", {"unexpected": 1}), {}, InvalidPayload),
        (("tests.three_steps", ["not", "a", "mapping"]), {}, InvalidPayload),
        # Once read as a trigger name (UnknownTrigger); a positional string is a payload.
        (("tests.three_steps", "manual"), {}, InvalidPayload),
        (("tests.three_steps", None), {}, InvalidPayload),
        (("tests.three_steps", {}), {"payload": None}, TypeError),
        (("tests.three_steps", "manual", {}), {}, TypeError),
    ],
)
def test_start_run__invalid_input_raises_and_persists_nothing(args, kwargs, error):
    with pytest.raises(error):
        squidmesh.start_run(*args, **kwargs)
    assert_nothing_persisted()


def test_start_run__without_a_payload_argument_means_an_empty_payload():
    run = squidmesh.start_run("tests.three_steps")
    assert run.payload == {"label": "x"}  # the declared default


@pytest.mark.parametrize("payload", ["manual", None, 3, ["label"]])
def test_start_run__non_mapping_payload_is_invalid_payload_naming_its_type(payload):
    with pytest.raises(InvalidPayload) as raised:
        squidmesh.start_run("tests.three_steps", payload)
    assert raised.value.errors == {
        "__all__": "payload must be a mapping of field names to values, "
        f"not {'None' if payload is None else type(payload).__name__}"
    }
    assert_nothing_persisted()


def test_start_run__trigger_is_keyword_only():
    import inspect

    from squidmesh import api

    parameter = inspect.signature(api.start_run).parameters["trigger"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY


def start_backoffice_order(**fields):
    return squidmesh.start_run(
        "shop.order_fulfilment",
        {"order_ref": "D-1", "amount_cents": 1, **fields},
        trigger="backoffice",
    )


def test_start_run__payload_nested_beyond_the_limit_names_the_field_without_recursion_error():
    deep: object = "leaf"
    for _ in range(5000):
        deep = {"down": deep}
    with pytest.raises(InvalidPayload) as raised:
        start_backoffice_order(metadata=deep)
    assert raised.value.errors == {
        "metadata": "must not nest objects and lists deeper than 32 levels "
        "(SQUIDMESH['MAX_PAYLOAD_DEPTH'], counting the payload itself)"
    }
    assert_nothing_persisted()


def test_start_run__payload_at_the_nesting_limit_is_accepted(settings):
    settings.SQUIDMESH = {"MAX_PAYLOAD_DEPTH": 4}
    # payload {..} > metadata {..} > [..] > {..}: four levels.
    assert start_backoffice_order(metadata={"a": [{"b": 1}]}).status == "pending"
    with pytest.raises(InvalidPayload, match="deeper than 4 levels"):
        start_backoffice_order(metadata={"a": [{"b": []}]})


def test_inspect_run__history_is_available_without_include_history():
    run = squidmesh.start_run(ThreeSteps, {})
    drain()
    plain = squidmesh.inspect_run(run.pk)
    loaded = squidmesh.inspect_run(run.pk, include_history=True)
    assert [step.step for step in plain.history] == ["a", "b", "c"]
    assert [step.step for step in plain.history] == [step.step for step in loaded.history]
    assert [a.number for a in plain.history[0].attempts.all()] == [1]
    fresh = WorkflowRun.objects.get(pk=run.pk)
    assert len(fresh.history) == 3


def test_inspect_run__history_of_a_run_with_include_history_costs_no_more_queries(
    django_assert_num_queries,
):
    run = squidmesh.start_run(ThreeSteps, {})
    drain()
    # run + step runs + attempts + the audit trail's events.
    with django_assert_num_queries(4):
        loaded = squidmesh.inspect_run(run.pk, include_history=True)
        [list(step.attempts.all()) for step in loaded.history]
        list(loaded.events.all())


def test_start_run__invalid_payload_names_every_field():
    with pytest.raises(InvalidPayload) as raised:
        squidmesh.start_run("shop.order_fulfilment", {"amount_cents": "12", "card": "gold"})
    assert set(raised.value.errors) == {"order_ref", "amount_cents", "card"}


def test_start_run__dispatch_failure_leaves_no_run(monkeypatch):
    from squidmesh.runtime.dispatcher import DjangoQDispatcher

    def broken(self, work):
        raise ConnectionError("broker down")

    monkeypatch.setattr(DjangoQDispatcher, "_enqueue", broken)
    with pytest.raises(ConnectionError):
        squidmesh.start_run(ThreeSteps, {})
    assert_nothing_persisted()


def test_start_run__idempotency_key_returns_the_existing_run():
    first = squidmesh.start_run(ThreeSteps, {}, idempotency_key="order-1")
    second = squidmesh.start_run(ThreeSteps, {"label": "other"}, idempotency_key="order-1")
    assert second.pk == first.pk
    assert WorkflowRun.objects.count() == 1
    assert OrmQ.objects.count() == 1
    other_workflow = squidmesh.start_run("shop.daily_report", {}, idempotency_key="order-1")
    assert other_workflow.pk != first.pk


@pytest.mark.parametrize("key", ["", "k" * 256, 42])
def test_start_run__bad_idempotency_key_raises_an_error_naming_it(key):
    with pytest.raises(squidmesh.InvalidIdempotencyKey) as raised:
        squidmesh.start_run(ThreeSteps, {}, idempotency_key=key)
    assert raised.value.field == "idempotency_key"
    # Not a list filter: callers that handle filters do not swallow it by accident.
    assert not isinstance(raised.value, InvalidFilter)
    assert isinstance(raised.value, squidmesh.InvalidArgument)
    assert_nothing_persisted()


def test_inspect_run__with_history_lists_steps_and_attempts_in_order():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 1})
    drain(include_delayed=True)
    inspected = squidmesh.inspect_run(run.pk, include_history=True)
    assert inspected.status == "completed"
    assert [s.step for s in inspected.history] == ["flaky"]
    attempts = list(inspected.history[0].attempts.all())
    assert [(a.number, a.status) for a in attempts] == [(1, "failed"), (2, "succeeded")]
    assert attempts[0].error["message"] == "flaky failure 1"
    assert attempts[0].duration is not None


@pytest.mark.parametrize("run_id", [uuid.uuid4(), "not-a-uuid", None, 42])
def test_inspect_run__unknown_or_malformed_id_raises_run_not_found(run_id):
    with pytest.raises(RunNotFound):
        squidmesh.inspect_run(run_id)


def test_list_runs__newest_first_with_filters_and_limit():
    runs = [squidmesh.start_run(ThreeSteps, {}) for _ in range(3)]
    report = squidmesh.start_run("shop.daily_report", {}, trigger="on_demand")
    squidmesh.cancel_run(runs[0].pk)
    assert [r.pk for r in squidmesh.list_runs()] == [report.pk, *[r.pk for r in reversed(runs)]]
    assert [r.pk for r in squidmesh.list_runs(workflow=ThreeSteps, limit=2)] == [
        runs[2].pk,
        runs[1].pk,
    ]
    assert [r.pk for r in squidmesh.list_runs(status="cancelled")] == [runs[0].pk]
    assert squidmesh.list_runs(workflow="retired.workflow") == []


@pytest.mark.parametrize(
    "kwargs", [{"status": "exploded"}, {"limit": 0}, {"limit": 10**6}, {"limit": "5"}]
)
def test_list_runs__invalid_filters_raise(kwargs):
    with pytest.raises(InvalidFilter):
        squidmesh.list_runs(**kwargs)


def test_cancel_run__pending_run_becomes_cancelled_and_its_delivery_is_a_no_op():
    run = squidmesh.start_run(ThreeSteps, {})
    assert squidmesh.cancel_run(run.pk).status == "cancelled"
    drain()
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert StepRun.objects.count() == 0


def test_cancel_run__run_waiting_between_steps_is_cancelled_at_once():
    run = squidmesh.start_run("tests.waiting", {})
    drain()  # runs `before`; `pause` is now queued for later
    run.refresh_from_db()
    assert (run.status, run.current_step) == ("running", "pause")
    assert run.scheduled_for is not None
    assert squidmesh.cancel_run(run.pk).status == "cancelled"
    drain(include_delayed=True)
    assert list(StepRun.objects.filter(run=run).values_list("step", flat=True)) == ["before"]


def test_cancel_run__run_with_an_executing_step_becomes_cancelling():
    run = squidmesh.start_run(ThreeSteps, {})
    drain()
    run.refresh_from_db()
    run_obj = WorkflowRun.objects.get(pk=run.pk)
    # A delivery is being executed elsewhere: its attempt is running.
    step_run = StepRun.objects.create(run=run_obj, step="x", position=9, status="running")
    StepAttempt.objects.create(step_run=step_run, run=run_obj, number=1, status="running")
    WorkflowRun.objects.filter(pk=run.pk).update(status="running")
    assert squidmesh.cancel_run(run.pk).status == "cancelling"
    assert squidmesh.cancel_run(run.pk).status == "cancelling"


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
def test_cancel_run__finished_run_raises_invalid_transition(status):
    run = squidmesh.start_run(ThreeSteps, {})
    WorkflowRun.objects.filter(pk=run.pk).update(status=status)
    with pytest.raises(InvalidTransition, match=f"already {status}"):
        squidmesh.cancel_run(run.pk)
    assert WorkflowRun.objects.get(pk=run.pk).status == status


def test_cancel_run__unknown_run_raises():
    with pytest.raises(RunNotFound):
        squidmesh.cancel_run(uuid.uuid4())


def test_replay_run__new_run_linked_to_source_from_the_entry_step():
    source = squidmesh.start_run(ThreeSteps, {"label": "again"})
    drain()
    source.refresh_from_db()
    replay = squidmesh.replay_run(source.pk)
    assert replay.pk != source.pk
    assert replay.replayed_from_id == source.pk
    assert (replay.workflow, replay.trigger, replay.payload) == (
        source.workflow,
        source.trigger,
        source.payload,
    )
    assert replay.current_step == "a" and replay.status == "pending"
    drain()
    replay.refresh_from_db()
    assert replay.status == "completed"
    assert list(source.replays.all()) == [replay]
    assert WorkflowRun.objects.get(pk=source.pk).updated_at == source.updated_at


def test_run_of_unregistered_workflow__stays_inspectable_and_cancellable():
    run = squidmesh.start_run(ThreeSteps, {})
    registry.unregister(ThreeSteps)
    try:
        assert squidmesh.inspect_run(run.pk, include_history=True).workflow == "tests.three_steps"
        assert squidmesh.list_runs(workflow="tests.three_steps")[0].pk == run.pk
        with pytest.raises(UnknownWorkflow):
            squidmesh.replay_run(run.pk)
        assert squidmesh.cancel_run(run.pk).status == "cancelled"
    finally:
        registry.register(ThreeSteps)


def test_api_before_apps_ready__lookup_works_and_a_call_explains_the_fix(monkeypatch):
    from django.apps import apps

    monkeypatch.setattr(apps, "ready", False)
    # A `from squidmesh import start_run` at the top of a workflows.py (imported
    # while apps are loading) and hasattr() must not raise.
    assert hasattr(squidmesh, "start_run") and hasattr(squidmesh, "recover_runs")
    from squidmesh import start_run

    with pytest.raises(RuntimeError, match=r"after django.setup\(\)"):
        start_run("tests.three_steps", {})
    monkeypatch.setattr(apps, "ready", True)
    assert start_run("tests.three_steps", {}).status == "pending"
    # Once Django is ready, the name is the function itself.
    from squidmesh import api

    assert squidmesh.start_run is api.start_run


def test_run_status_is_exported():
    from squidmesh.lifecycle import RunStatus

    assert squidmesh.RunStatus is RunStatus
    assert "RunStatus" in squidmesh.__all__


def test_cancel_run__run_waiting_to_retry_is_cancelled_with_its_step():
    run = squidmesh.start_run("tests.flaky", {"fail_times": 2})
    drain()  # attempt 1 fails; attempt 2 is queued for later
    assert WorkflowRun.objects.get(pk=run.pk).status == "retrying"
    cancelled = squidmesh.cancel_run(run.pk)
    assert (cancelled.status, cancelled.current_step, cancelled.scheduled_for) == (
        "cancelled",
        "flaky",
        None,
    )
    assert StepRun.objects.get(run=run).status == "cancelled"
    drain(include_delayed=True)
    assert StepAttempt.objects.filter(run=run).count() == 1


def test_start_run_once__started_now_tells_a_new_run_from_an_idempotent_repeat():
    from squidmesh.api import StartResult, start_run_once

    first = start_run_once(ThreeSteps, {}, idempotency_key="k-1")
    again = start_run_once(ThreeSteps, {}, idempotency_key="k-1")
    assert isinstance(first, StartResult)
    assert (first.started_now, again.started_now) == (True, False)
    assert again.run.pk == first.run.pk


def test_start_run__returns_the_run_without_writing_attributes_onto_it():
    run = squidmesh.start_run(ThreeSteps, {}, idempotency_key="k-2")
    again = squidmesh.start_run(ThreeSteps, {}, idempotency_key="k-2")
    assert isinstance(run, WorkflowRun) and again.pk == run.pk
    assert not hasattr(run, "started_now") and not hasattr(again, "started_now")


def test_start_run__example_amount_beyond_its_column_is_refused_up_front():
    # The example's Order.amount_cents is a PositiveIntegerField; 99999999999999999999999
    # once passed validation and failed inside reserve_stock ("integer out of range").
    for amount in (99999999999999999999999, 2**31, -1):
        with pytest.raises(InvalidPayload) as raised:
            squidmesh.start_run("shop.order_fulfilment", {"order_ref": "X", "amount_cents": amount})
        assert set(raised.value.errors) == {"amount_cents"}
    assert_nothing_persisted()


def test_start_run__example_report_date_is_an_iso_date_defaulting_to_today():
    from django.utils import timezone

    run = squidmesh.start_run("shop.daily_report", trigger="on_demand")
    assert run.payload == {"report_date": timezone.localdate().isoformat()}
    with pytest.raises(InvalidPayload, match="report_date: must be an ISO-8601 date"):
        squidmesh.start_run("shop.daily_report", {"report_date": "31/01/2024"}, trigger="on_demand")
