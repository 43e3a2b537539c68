"""Responses through the project's one strict JSON encoder."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from ..runs.codec import encode


class StrictJSONResponse(JSONResponse):
    """RFC 8259 JSON; NaN/±Inf as "NaN"/"Infinity"/"-Infinity" (never a 500).

    A JSONResponse, so that OpenAPI shows a route's `response_model` as its schema;
    a route that returns one directly is sent as it is, never re-serialized."""

    def render(self, content: Any) -> bytes:
        return encode(content)
