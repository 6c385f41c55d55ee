"""Typed payload fields and the `Payload` contract a trigger validates against."""

from __future__ import annotations

import json
import math
import re
from collections import abc
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

__all__ = [
    "TODAY",
    "Boolean",
    "Choice",
    "Date",
    "DateTime",
    "Field",
    "Float",
    "Integer",
    "List",
    "Mapping",
    "Payload",
    "String",
]


class _Missing:
    def __repr__(self) -> str:
        return "<no default>"


NO_DEFAULT: Any = _Missing()


class _Today:
    """Default that resolves to the current date (ISO-8601) when a run is created."""

    def __repr__(self) -> str:
        return "TODAY"

    def resolve(self) -> str:
        return timezone.localdate().isoformat()


TODAY = _Today()


class Field:
    """One payload field: a type, whether it is required, and a default."""

    type_name = "any"

    def __init__(
        self, *, required: bool | None = None, default: Any = NO_DEFAULT, help_text: str = ""
    ) -> None:
        self.default = default
        # A field with a default is optional unless said otherwise.
        self.required = (default is NO_DEFAULT) if required is None else required
        self.help_text = help_text
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def has_default(self) -> bool:
        return self.default is not NO_DEFAULT

    def default_value(self) -> Any:
        if isinstance(self.default, _Today):
            return self.default.resolve()
        return self.default

    def default_error(self) -> str | None:
        """Return why the declared default does not fit the field, or None."""
        if not self.has_default():
            return None
        if isinstance(self.default, _Today):
            if isinstance(self, String | Date):
                return None
            return "TODAY is only a default for String and Date"
        return self.validate(self.default)

    def validate(self, value: Any) -> str | None:
        """Return an error message for `value`, or None if it is acceptable."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Return a JSON-ready description (used by the admin, API and docs)."""
        description: dict[str, Any] = {
            "name": self.name,
            "type": self.type_name,
            "required": self.required,
        }
        if self.has_default():
            description["default"] = (
                repr(self.default) if isinstance(self.default, _Today) else self.default
            )
        if self.help_text:
            description["help_text"] = self.help_text
        return description


class String(Field):
    type_name = "string"

    def validate(self, value: Any) -> str | None:
        return None if isinstance(value, str) else "must be a string"


#: The range of a signed 64-bit integer: what a `BigIntegerField` (and most
#: code a step hands the value to) can hold.
INTEGER_MIN = -(2**63)
INTEGER_MAX = 2**63 - 1


class Integer(Field):
    """A whole number, by default within signed 64-bit bounds.

    `min_value` and `max_value` narrow the range (inclusive); they cannot
    widen it, since a value beyond 64 bits passes validation only to fail
    later inside a step ("integer out of range").
    """

    type_name = "integer"

    def __init__(
        self, *, min_value: int | None = None, max_value: int | None = None, **kwargs: Any
    ) -> None:
        for name, bound in (("min_value", min_value), ("max_value", max_value)):
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, int):
                raise TypeError(f"Integer {name} must be an int, got {bound!r}")
            if not INTEGER_MIN <= bound <= INTEGER_MAX:
                raise ValueError(f"Integer {name} {bound} is outside the signed 64-bit range")
        if min_value is not None and max_value is not None and min_value > max_value:
            raise ValueError(f"Integer min_value {min_value} is above max_value {max_value}")
        self.min_value = min_value
        self.max_value = max_value
        super().__init__(**kwargs)

    def validate(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        low = INTEGER_MIN if self.min_value is None else self.min_value
        high = INTEGER_MAX if self.max_value is None else self.max_value
        if value < low:
            return f"must be at least {low}"
        if value > high:
            return f"must be at most {high}"
        return None

    def describe(self) -> dict[str, Any]:
        description = super().describe()
        for name in ("min_value", "max_value"):
            if getattr(self, name) is not None:
                description[name] = getattr(self, name)
        return description


class Float(Field):
    type_name = "float"

    def validate(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        return None


class Boolean(Field):
    type_name = "boolean"

    def validate(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"


class Mapping(Field):
    type_name = "mapping"

    def validate(self, value: Any) -> str | None:
        if not isinstance(value, abc.Mapping) or not all(isinstance(k, str) for k in value):
            return "must be a mapping with string keys"
        return None


class List(Field):
    type_name = "list"

    def validate(self, value: Any) -> str | None:
        return None if isinstance(value, list | tuple) else "must be a list"


class Choice(Field):
    """A value from a closed set (the seed's atom type)."""

    type_name = "choice"

    def __init__(self, choices: Iterable[Any], **kwargs: Any):
        self.choices = list(choices)
        super().__init__(**kwargs)

    def validate(self, value: Any) -> str | None:
        if value in self.choices and type(value) in {type(c) for c in self.choices}:
            return None
        return f"must be one of {', '.join(repr(c) for c in self.choices)}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "choices": self.choices}


# Values stay the strings the client sent (payloads are JSON and never
# coerced); these patterns pin the ISO-8601 extended form, which
# `fromisoformat` alone would widen to "20250131" or week dates.
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
DATETIME_PATTERN = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})", re.ASCII
)


class Date(Field):
    """A calendar date as an ISO-8601 string, `YYYY-MM-DD`; `TODAY` is an allowed default."""

    type_name = "date"

    def validate(self, value: Any) -> str | None:
        message = "must be an ISO-8601 date string (YYYY-MM-DD)"
        if not isinstance(value, str) or not DATE_PATTERN.fullmatch(value):
            return message
        try:
            date.fromisoformat(value)
        except ValueError:
            return message
        return None


class DateTime(Field):
    """An instant as an ISO-8601 string with a UTC offset: `2025-01-31T08:00:00Z`, `…+01:00`.

    The offset is required: a payload outlives the process that wrote it,
    and a naive time would be read in whatever zone the step's server uses.
    """

    type_name = "datetime"

    def validate(self, value: Any) -> str | None:
        message = "must be an ISO-8601 date and time with a UTC offset (2025-01-31T08:00:00Z)"
        if not isinstance(value, str) or not DATETIME_PATTERN.fullmatch(value):
            return message
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return message
        return None


def nests_deeper_than(value: Any, limit: int) -> bool:
    """Return whether `value` has more than `limit` levels of nested objects and lists.

    Iterative, so a payload nested thousands of levels deep is measured
    without the `RecursionError` a recursive walk (or `json.dumps`) hits.
    """
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, abc.Mapping):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def storage_problem(value: Any) -> str | None:
    """Return why `value` cannot be stored as JSON on every supported database, or None.

    PostgreSQL's jsonb refuses NUL characters, lone surrogates and NaN /
    Infinity (SQLite's JSON check refuses the last two); left unchecked they
    fail the insert instead of the validation.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return "must not contain NUL characters (\\u0000)"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode text (no lone surrogates)"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must contain only finite numbers"
    if isinstance(value, abc.Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return "must be a mapping with string keys"
            problem = storage_problem(key) or storage_problem(item)
            if problem:
                return problem
        return None
    if isinstance(value, list | tuple):
        return next(filter(None, map(storage_problem, value)), None)
    if value is None or isinstance(value, bool | int):
        return None
    try:
        json.dumps(value, cls=DjangoJSONEncoder)
    except (TypeError, ValueError):
        return f"must be JSON data, not {type(value).__name__}"
    return None


class PayloadMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> PayloadMeta:
        # Every class made here is a Payload (subclass): type its attributes.
        cls = cast("type[Payload]", super().__new__(mcs, name, bases, namespace))
        declared: dict[str, Field] = {}
        for base in reversed(cls.__mro__[1:]):
            declared.update(getattr(base, "declared_fields", {}))
        declared.update({k: v for k, v in namespace.items() if isinstance(v, Field)})
        cls.declared_fields = declared
        return cls


class Payload(metaclass=PayloadMeta):
    """A payload contract declared like a form::

    class InvoicePayload(Payload):
        invoice_id = String()
        attempts = Integer(default=3)
    """

    declared_fields: dict[str, Field]

    @classmethod
    def from_mapping(cls, fields: abc.Mapping[str, Field]) -> type[Payload]:
        """Return a `Payload` class with `fields` (a name → `Field` mapping)."""
        namespace: dict[str, Any] = {}
        for name, field in fields.items():
            if not isinstance(field, Field):
                raise TypeError(f"payload field {name!r} must be a squidmesh Field, got {field!r}")
            field.name = name
            namespace[name] = field
        return cast("type[Payload]", PayloadMeta("Payload", (Payload,), namespace))

    @classmethod
    def clean(cls, data: Any) -> dict[str, Any]:
        """Return `data` validated, with defaults applied.

        Raise `InvalidPayload` naming every bad field (undeclared fields
        included), or under `"__all__"` when `data` is not a mapping (`None`
        included); values are never coerced (a string "3" is not an integer).
        """
        from squidmesh.conf import settings
        from squidmesh.exceptions import InvalidPayload

        if not isinstance(data, abc.Mapping):
            raise InvalidPayload(
                {
                    "__all__": "payload must be a mapping of field names to values, "
                    f"not {'None' if data is None else type(data).__name__}"
                }
            )
        errors: dict[str, str] = {}
        cleaned: dict[str, Any] = {}
        for key in data:
            if not isinstance(key, str):
                errors[str(key)] = "field names must be strings"
            elif key not in cls.declared_fields:
                errors[key] = "is not a declared payload field"
        # The payload object is the first level; its fields' values nest below it.
        depth_limit = settings.MAX_PAYLOAD_DEPTH
        for name, field in cls.declared_fields.items():
            if name in data and nests_deeper_than(data[name], depth_limit - 1):
                errors[name] = (
                    f"must not nest objects and lists deeper than {depth_limit} levels "
                    "(SQUIDMESH['MAX_PAYLOAD_DEPTH'], counting the payload itself)"
                )
            elif name in data:
                message = field.validate(data[name]) or storage_problem(data[name])
                if message:
                    errors[name] = message
                else:
                    cleaned[name] = data[name]
            elif field.has_default():
                cleaned[name] = field.default_value()
            elif field.required:
                errors[name] = "this field is required"
        if errors:
            raise InvalidPayload(errors)
        return cleaned

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        return [field.describe() for field in cls.declared_fields.values()]
