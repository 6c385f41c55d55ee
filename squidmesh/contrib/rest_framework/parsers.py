"""Request body parsing that turns JSON nested too deeply for Python into a 400."""

from __future__ import annotations

from rest_framework import parsers
from rest_framework.exceptions import ParseError

__all__ = ["JSONParser"]


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, answering a 400 where `json.loads` raises `RecursionError`.

    Python's JSON decoder recurses per nesting level, so a body of about a
    thousand nested arrays would otherwise escape DRF as a 500. Bodies that
    parse are then held to `SQUIDMESH['MAX_PAYLOAD_DEPTH']` by `start_run`.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
