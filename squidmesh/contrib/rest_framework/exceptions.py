"""How squidmesh's errors become HTTP responses: 400 with field errors, 404 and 409."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.settings import api_settings

from squidmesh.exceptions import InvalidPayload

__all__ = ["Conflict", "payload_errors"]


class Conflict(APIException):
    """The run's state, or the workflow's current definition, does not allow the action."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The run's state does not allow this action."
    default_code = "conflict"


def payload_errors(error: InvalidPayload) -> dict[str, list[str]]:
    """Return `error.errors` shaped like DRF's field errors of a nested serializer.

    A payload that is not a mapping at all (`"__all__"`) is reported under
    DRF's non-field key, as DRF does for a nested object of the wrong type.
    """
    return {
        api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else field: [message]
        for field, message in error.errors.items()
    }
