"""Cursor pagination of runs, newest first: each page costs one indexed query, never a COUNT."""

from __future__ import annotations

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

    @property
    def max_page_size(self) -> int:
        return settings.MAX_LIST_LIMIT

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return settings.LIST_LIMIT
        maximum = settings.MAX_LIST_LIMIT
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 0 < size <= maximum:
            raise ValidationError(
                {self.page_size_query_param: [f"Must be an integer from 1 to {maximum}."]}
            )
        return size

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: [self.invalid_cursor_message]}
            ) from None
