import pytest
from django.utils import timezone

from squidmesh import TODAY, InvalidPayload, Payload, fields


class Contract(Payload):
    name = fields.String()
    count = fields.Integer(default=1)
    ratio = fields.Float(required=False)
    enabled = fields.Boolean(default=False)
    meta = fields.Mapping(default={})
    items = fields.List(default=[])
    mode = fields.Choice(["fast", "slow"], default="fast")
    day = fields.String(default=TODAY)


def test_clean__applies_defaults_including_today():
    cleaned = Contract.clean({"name": "x"})
    assert cleaned == {
        "name": "x",
        "count": 1,
        "enabled": False,
        "meta": {},
        "items": [],
        "mode": "fast",
        "day": timezone.localdate().isoformat(),
    }


def test_clean__optional_field_without_default_is_left_out():
    assert "ratio" not in Contract.clean({"name": "x"})
    assert Contract.clean({"name": "x", "ratio": 2})["ratio"] == 2


def test_clean__lists_every_bad_field():
    with pytest.raises(InvalidPayload) as raised:
        Contract.clean(
            {
                "count": "3",
                "ratio": float("nan"),
                "enabled": 1,
                "meta": [],
                "items": "abc",
                "mode": "medium",
                "extra": True,
            }
        )
    assert raised.value.errors == {
        "name": "this field is required",
        "count": "must be an integer",
        "ratio": "must be a finite number",
        "enabled": "must be true or false",
        "meta": "must be a mapping with string keys",
        "items": "must be a list",
        "mode": "must be one of 'fast', 'slow'",
        "extra": "is not a declared payload field",
    }
    assert "count: must be an integer" in str(raised.value)


@pytest.mark.parametrize("value", [True, 1.0, "1", None])
def test_integer__rejects_non_integers_including_bool(value):
    assert fields.Integer().validate(value) == "must be an integer"


@pytest.mark.parametrize("payload", [[1, 2], "text", 3])
def test_clean__non_mapping_payload_is_invalid(payload):
    with pytest.raises(InvalidPayload) as raised:
        Contract.clean(payload)
    assert "__all__" in raised.value.errors


def test_clean__none_is_not_a_payload():
    # It once became {} silently; only leaving the payload out means "empty".
    with pytest.raises(InvalidPayload) as raised:
        Contract.clean(None)
    assert raised.value.errors == {
        "__all__": "payload must be a mapping of field names to values, not None"
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2**63, "must be at most 9223372036854775807"),
        (99999999999999999999999, "must be at most 9223372036854775807"),
        (-(2**63) - 1, "must be at least -9223372036854775808"),
    ],
)
def test_integer__defaults_to_signed_64_bit_bounds(value, message):
    assert fields.Integer().validate(value) == message
    assert fields.Integer().validate(2**63 - 1) is None
    assert fields.Integer().validate(-(2**63)) is None


def test_integer__min_and_max_value_are_inclusive_bounds():
    field = fields.Integer(min_value=1, max_value=10)
    assert [field.validate(v) for v in (1, 10)] == [None, None]
    assert field.validate(0) == "must be at least 1"
    assert field.validate(11) == "must be at most 10"
    field.name = "n"
    assert field.describe() == {
        "name": "n",
        "type": "integer",
        "required": True,
        "min_value": 1,
        "max_value": 10,
    }


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"min_value": 5, "max_value": 1}, ValueError),
        ({"max_value": 2**63}, ValueError),
        ({"min_value": "1"}, TypeError),
        ({"min_value": True}, TypeError),
    ],
)
def test_integer__bad_bounds_fail_at_declaration(kwargs, error):
    with pytest.raises(error):
        fields.Integer(**kwargs)


def test_integer__default_outside_the_bounds_is_a_definition_error():
    assert fields.Integer(min_value=1, default=0).default_error() == "must be at least 1"


@pytest.mark.parametrize("value", ["2025-01-31", "2024-02-29"])
def test_date__accepts_iso_8601_calendar_dates(value):
    assert fields.Date().validate(value) is None


@pytest.mark.parametrize(
    "value",
    ["2025-02-30", "20250131", "2025-W05-1", "31/01/2025", "2025-01-31T00:00:00Z", 20250131],
)
def test_date__refuses_anything_else(value):
    assert fields.Date().validate(value) == "must be an ISO-8601 date string (YYYY-MM-DD)"


def test_date__refuses_python_date_objects_since_payloads_are_json():
    import datetime

    assert fields.Date().validate(datetime.date(2025, 1, 31)) is not None


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-31T08:00:00Z",
        "2025-01-31T08:00Z",
        "2025-01-31T08:00:00.123456+01:00",
        "2025-01-31 08:00:00-05:30",
    ],
)
def test_datetime__accepts_iso_8601_with_an_offset(value):
    assert fields.DateTime().validate(value) is None


@pytest.mark.parametrize(
    "value", ["2025-01-31T08:00:00", "2025-01-31", "2025-01-31T25:00:00Z", "now", None]
)
def test_datetime__refuses_naive_or_malformed_times(value):
    assert fields.DateTime().validate(value).startswith("must be an ISO-8601 date and time")


def test_date__today_is_an_allowed_default_resolved_at_clean():
    class Report(Payload):
        day = fields.Date(default=TODAY)
        at = fields.DateTime(required=False)

    assert fields.Date(default=TODAY).default_error() is None
    assert fields.DateTime(default=TODAY).default_error() == (
        "TODAY is only a default for String and Date"
    )
    assert Report.clean({}) == {"day": timezone.localdate().isoformat()}
    with pytest.raises(InvalidPayload) as raised:
        Report.clean({"day": "tomorrow", "at": "2025-01-31T08:00:00"})
    assert set(raised.value.errors) == {"day", "at"}


def test_date_fields_are_public():
    assert {"Date", "DateTime"} <= set(fields.__all__)
    assert fields.Date().describe()["type"] == "date"
    assert fields.DateTime().describe()["type"] == "datetime"


def test_choice__does_not_confuse_true_with_one():
    assert fields.Choice([1, 2]).validate(True) is not None
    assert fields.Choice([1, 2]).validate(1) is None


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"name": "a\x00b"}, "name", "must not contain NUL characters (\\u0000)"),
        ({"name": "x", "meta": {"k\x00": 1}}, "meta", "must not contain NUL characters (\\u0000)"),
        ({"name": "x", "items": [["\x00"]]}, "items", "must not contain NUL characters (\\u0000)"),
        ({"name": "a\ud800"}, "name", "must be valid Unicode text (no lone surrogates)"),
        ({"name": "x", "meta": {"r": float("nan")}}, "meta", "must contain only finite numbers"),
        ({"name": "x", "items": [float("inf")]}, "items", "must contain only finite numbers"),
        ({"name": "x", "meta": {"a": {1: 2}}}, "meta", "must be a mapping with string keys"),
        ({"name": "x", "items": [object()]}, "items", "must be JSON data, not object"),
    ],
)
def test_clean__refuses_values_a_database_cannot_store_as_json(payload, field, message):
    # PostgreSQL's jsonb rejects these on insert; validation must say so first.
    with pytest.raises(InvalidPayload) as raised:
        Contract.clean(payload)
    assert raised.value.errors == {field: message}


@pytest.mark.django_db
def test_start_run__payload_with_a_nul_character_is_invalid_and_writes_nothing():
    import squidmesh
    from squidmesh.models import WorkflowRun

    with pytest.raises(InvalidPayload, match="order_ref: must not contain NUL"):
        squidmesh.start_run("shop.order_fulfilment", {"order_ref": "A\x00", "amount_cents": 1})
    assert not WorkflowRun.objects.exists()
