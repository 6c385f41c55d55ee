"""Property: any JSON payload is either accepted and stored as cleaned, or refused with InvalidPayload."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import squidmesh
from squidmesh import TODAY, InvalidPayload, Payload, fields
from squidmesh.models import WorkflowRun
from squidmesh.registry import registry

# Any text, and text made of the characters databases are picky about
# (PostgreSQL's jsonb refuses NUL) plus escapes and non-BMP characters.
TEXT = st.text() | st.text(alphabet=st.sampled_from(["a", "\x00", "é", "\\", '"', "\U0001f600"]))
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


class EveryField(Payload):
    name = fields.String()
    count = fields.Integer(default=1)
    ratio = fields.Float(required=False)
    enabled = fields.Boolean(default=False)
    meta = fields.Mapping(default={})
    items = fields.List(default=[])
    mode = fields.Choice(["fast", "slow", 3], default="fast")
    day = fields.String(default=TODAY)


def trigger_contracts():
    """(workflow, trigger) pairs whose payload contracts the properties exercise."""
    return [
        ("shop.order_fulfilment", "checkout"),
        ("shop.order_fulfilment", "backoffice"),
        ("shop.daily_report", "on_demand"),
        ("tests.flaky", "manual"),
        ("tests.three_steps", "manual"),
    ]


def values_for(field: fields.Field):
    """JSON values of the field's own type (often valid), or any JSON at all."""
    typed = {
        fields.String: TEXT,
        fields.Integer: st.integers(),
        fields.Float: st.floats(allow_nan=False, allow_infinity=False) | st.integers(),
        fields.Boolean: st.booleans(),
        fields.Mapping: st.dictionaries(TEXT, JSON, max_size=4),
        fields.List: st.lists(JSON, max_size=4),
    }.get(type(field))
    if isinstance(field, fields.Choice):
        typed = st.sampled_from(field.choices)
    if typed is None:
        return JSON
    # Mostly well-typed, so that many payloads get past validation to storage.
    return st.one_of(typed, typed, typed, JSON)


def payloads_for(contract: type[Payload]):
    """Arbitrary JSON, and mappings of the contract's fields to values of (mostly) their type."""
    declared = contract.declared_fields
    shaped = st.fixed_dictionaries(
        {name: values_for(field) for name, field in declared.items() if field.required},
        optional={
            name: values_for(field) for name, field in declared.items() if not field.required
        },
    )
    extra = st.dictionaries(st.sampled_from(["extra", *contract.declared_fields]), JSON, max_size=2)
    return JSON | shaped | st.builds(lambda a, b: {**b, **a}, shaped, extra)


def assert_clean_or_invalid(contract: type[Payload], payload) -> None:
    try:
        cleaned = contract.clean(payload)
    except InvalidPayload as error:
        assert error.errors and all(isinstance(k, str) for k in error.errors)
        return
    assert set(cleaned) <= set(contract.declared_fields)
    assert contract.clean(cleaned) == cleaned  # cleaning is idempotent


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_clean__any_json_is_cleaned_or_refused_with_invalid_payload(data):
    assert_clean_or_invalid(EveryField, data.draw(payloads_for(EveryField)))


@pytest.mark.django_db
@pytest.mark.parametrize(("workflow", "trigger"), trigger_contracts())
def test_trigger_contracts__any_json_is_cleaned_or_refused(workflow, trigger):
    contract = registry.get(workflow).get_trigger(trigger).payload

    @settings(max_examples=60, deadline=None)
    @given(payload=payloads_for(contract))
    def check(payload):
        assert_clean_or_invalid(contract, payload)

    check()


@pytest.mark.django_db
@pytest.mark.parametrize(("workflow", "trigger"), trigger_contracts())
def test_start_run__any_json_starts_a_run_or_raises_invalid_payload_and_writes_nothing(
    workflow, trigger
):
    contract = registry.get(workflow).get_trigger(trigger).payload

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(payload=payloads_for(contract))
    def check(payload):
        before = WorkflowRun.objects.count()
        try:
            run = squidmesh.start_run(workflow, payload, trigger=trigger)
        except InvalidPayload:
            assert WorkflowRun.objects.count() == before
            return
        stored = WorkflowRun.objects.get(pk=run.pk)
        expected = contract.clean(payload) | _today_defaults(contract, stored)
        assert same_json(stored.payload, expected), (stored.payload, expected)

    check()


def same_json(stored, sent) -> bool:
    """Compare as JSON documents: PostgreSQL's jsonb keeps numbers as decimals,
    so a float like 9.5e16 comes back as the integer it spells."""
    if isinstance(sent, bool) or isinstance(stored, bool):
        return stored is sent
    if isinstance(sent, int | float) and isinstance(stored, int | float):
        return float(stored) == float(sent)
    if isinstance(sent, dict) and isinstance(stored, dict):
        return stored.keys() == sent.keys() and all(same_json(stored[k], sent[k]) for k in sent)
    if isinstance(sent, list | tuple) and isinstance(stored, list):
        return len(stored) == len(sent) and all(map(same_json, stored, sent))
    return stored == sent


def _today_defaults(contract, stored):
    # TODAY defaults resolve when the run is created; compare what was stored.
    return {
        name: stored.payload[name]
        for name, field in contract.declared_fields.items()
        if field.default is TODAY and name in stored.payload
    }
