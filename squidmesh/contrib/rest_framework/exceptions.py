"""How squidmesh's errors become HTTP responses: 400 with field errors, 404, 409 and 413."""

from __future__ import annotations

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.settings import api_settings

from squidmesh.exceptions import InvalidPayload

__all__ = ["Conflict", "RequestTooLarge", "payload_errors"]


class Conflict(APIException):
    """The run's state, or the workflow's current definition, does not allow the action."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The run's state does not allow this action."
    default_code = "conflict"


class RequestTooLarge(APIException):
    """The request body is larger than the project's `DATA_UPLOAD_MAX_MEMORY_SIZE`.

    Django raises `RequestDataTooBig` when the body is read, which would
    otherwise become Django's HTML 400 page.
    """

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large (DATA_UPLOAD_MAX_MEMORY_SIZE)."
    default_code = "request_too_large"


def payload_errors(error: InvalidPayload) -> dict[str, list[str]]:
    """Return `error.errors` shaped like DRF's field errors of a nested serializer.

    A payload that is not a mapping at all (`"__all__"`) is reported under
    DRF's non-field key, as DRF does for a nested object of the wrong type.
    """
    return {
        api_settings.NON_FIELD_ERRORS_KEY if field == "__all__" else field: [message]
        for field, message in error.errors.items()
    }
