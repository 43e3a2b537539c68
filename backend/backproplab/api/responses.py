"""Responses through the project's one strict JSON encoder."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from ..runs.codec import encode


class StrictJSONResponse(Response):
    """RFC 8259 JSON; NaN/±Inf as "NaN"/"Infinity"/"-Infinity" (never a 500)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)
