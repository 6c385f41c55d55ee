"""Cursor pagination of runs, newest first: each page costs one indexed query, never a COUNT."""

from __future__ import annotations

from django.utils.dateparse import parse_datetime
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination

from squidmesh.conf import settings

__all__ = ["RunCursorPagination"]


class RunCursorPagination(CursorPagination):
    """Page through runs by `(created_at, id)` descending (the `squidmesh_run_newest` index).

    `?limit=` sets the page size (default `SQUIDMESH['LIST_LIMIT']`, at most
    `SQUIDMESH['MAX_LIST_LIMIT']`); a bad `limit` or `cursor` is a 400
    naming the parameter.
    """

    ordering = ("-created_at", "-id")
    page_size_query_param = "limit"
    page_size_query_description = "Number of runs per page."
    cursor_query_description = "Opaque cursor from the `next` or `previous` link."

    # A property so `override_settings` applies; DRF declares a plain attribute.
    @property
    def max_page_size(self) -> int:  # type: ignore[override]
        return settings.MAX_LIST_LIMIT

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return settings.LIST_LIMIT
        maximum = settings.MAX_LIST_LIMIT
        # int() also reads full-width digits and " 5 "; the schema says an integer.
        size = int(raw) if raw.isascii() and raw.isdigit() else 0
        if not 0 < size <= maximum:
            raise ValidationError(
                {self.page_size_query_param: [f"Must be an integer from 1 to {maximum}."]}
            )
        return size

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            cursor = None
            invalid = True
        else:
            # DRF checks the cursor's offset, not its position: a crafted cursor
            # would reach the database as `created_at < 'notadate'` (or a NUL) and
            # fail there. The position is `str()` of a `created_at`.
            invalid = cursor is not None and not self.valid_position(cursor)
        if invalid:
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]})
        return cursor

    @staticmethod
    def valid_position(cursor) -> bool:
        if cursor is None or cursor.position is None:
            return True
        try:
            return parse_datetime(cursor.position) is not None
        except ValueError:  # well-formed but out of range, like month 13
            return False

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update({"minimum": 1, "maximum": settings.MAX_LIST_LIMIT})
        return parameters
