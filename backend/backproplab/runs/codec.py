"""The one JSON encoder for every payload (stream, export, files).

Output is strict RFC 8259 JSON. A non-finite float is written as the string
"NaN", "Infinity" or "-Infinity" (the convention of the protobuf JSON mapping),
so the three stay distinguishable and round-trip through `decode`; browsers
parse it with plain JSON.parse.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

try:
    import orjson
except ImportError:  # where only numpy and torch are (the watch layer on a GPU box)
    orjson = None

NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def nonfinite_name(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return "Infinity" if x > 0 else "-Infinity"


def _clean(x: Any) -> Any:
    t = type(x)
    if t is float:
        return x if x - x == 0.0 else nonfinite_name(x)  # inf - inf and nan - nan are nan
    if t is dict:
        return {k: _clean(v) for k, v in x.items()}
    if t is list or t is tuple:
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return _clean(float(x))
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return x


def encode(obj: Any, finite: bool = False) -> bytes:
    """Strict JSON bytes; NaN/±Inf become "NaN"/"Infinity"/"-Infinity".

    finite=True: the caller has checked that no float in `obj` is NaN or ±Inf (and
    that it holds only JSON types), so the structure is not walked."""
    if finite:
        if orjson is None:
            return json.dumps(obj, allow_nan=False, ensure_ascii=False,
                              separators=(",", ":")).encode()
        return orjson.dumps(obj)
    if orjson is None:
        return json.dumps(_clean(obj), allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")).encode()
    return orjson.dumps(_clean(obj))


def encode_str(obj: Any) -> str:
    return encode(obj).decode()


MAX_DEPTH = 64  # arrays and objects nested in each other; a run record needs ~6


class TooDeep(ValueError):
    """JSON nested past MAX_DEPTH (valid JSON, but not a payload of this app)."""


def too_deep(depth: int = MAX_DEPTH) -> TooDeep:
    return TooDeep(f"JSON nested more than {depth} levels deep (arrays and objects "
                   "inside each other); a run record needs about 6")


def restore(x: Any, depth: int = 0) -> Any:
    """Turn the non-finite sentinels back into floats, everywhere in a structure.

    Only exact sentinel strings are converted; callers that carry free text in
    known fields (notes, messages) validate those separately. ValueError for a
    structure nested more than MAX_DEPTH levels (the encoder, and Python's stack,
    would fail on it later)."""
    t = type(x)
    if t is str:
        return NONFINITE.get(x, x)
    if t is dict or t is list:
        if depth >= MAX_DEPTH:
            raise too_deep()
        if t is dict:
            return {k: restore(v, depth + 1) for k, v in x.items()}
        return [restore(v, depth + 1) for v in x]
    return x


def check_depth(x: Any, limit: int = MAX_DEPTH) -> Any:
    """x itself, or ValueError when it nests more than `limit` levels (no copy)."""
    stack = [(x, 0)]
    while stack:
        item, depth = stack.pop()
        t = type(item)
        if t is dict or t is list:
            if depth >= limit:
                raise too_deep(limit)
            stack.extend((v, depth + 1) for v in (item.values() if t is dict else item)
                         if type(v) is dict or type(v) is list)
    return x


def decode(data: bytes | str) -> Any:
    """Parse strict JSON (bare NaN/Infinity tokens are rejected) and restore non-finite values."""
    if orjson is None:
        def reject(token: str) -> None:
            raise ValueError(f"bare {token} is not JSON")

        return restore(json.loads(data, parse_constant=reject))
    return restore(orjson.loads(data))
