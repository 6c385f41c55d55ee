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


def test_clean__none_means_empty_payload():
    with pytest.raises(InvalidPayload) as raised:
        Contract.clean(None)
    assert raised.value.errors == {"name": "this field is required"}


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
