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


def restore(x: Any) -> Any:
    """Turn the non-finite sentinels back into floats, everywhere in a structure.

    Only exact sentinel strings are converted; callers that carry free text in
    known fields (notes, messages) validate those separately."""
    t = type(x)
    if t is str:
        return NONFINITE.get(x, x)
    if t is dict:
        return {k: restore(v) for k, v in x.items()}
    if t is list:
        return [restore(v) for v in x]
    return x


def decode(data: bytes | str) -> Any:
    """Parse strict JSON (bare NaN/Infinity tokens are rejected) and restore non-finite values."""
    if orjson is None:
        def reject(token: str) -> None:
            raise ValueError(f"bare {token} is not JSON")

        return restore(json.loads(data, parse_constant=reject))
    return restore(orjson.loads(data))
