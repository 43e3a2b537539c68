"""What both array namespaces share: the standard part, and the one overflow-safe norm.

The norm rule, used by every probe and clip: a sum of squares strictly inside
`norm_window(dtype)` is exact enough as it is; outside it some squares may have
under- or overflowed, so the norm is retaken scaled by the largest entry (a
vanishing δ of 1e-30 in float32 is data, not 0).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

# the Array API standard functions the numeric code uses, taken from the library's
# standard namespace (array-api-compat's for NumPy, TorchStandard for torch)
STANDARD = ("abs", "sqrt", "exp", "expm1", "tanh", "log10", "floor", "isfinite", "maximum",
            "minimum", "where", "ones_like", "sum", "mean", "min", "max", "stack", "concat",
            "clip")


@functools.cache
def norm_window(dtype: Any) -> tuple[float, float]:
    """(lo, hi): sums of squares in float `dtype` strictly between them are trusted."""
    info = np.finfo(dtype)
    return float(info.tiny) * 1e8, float(info.max) * 1e-8


def scaled_norm(largest: float, rescaled_norm: Any) -> float:
    """‖v‖ = max|v| · ‖v / max|v|‖ (0, NaN and ±Inf pass as they are)."""
    if not largest > 0 or math.isinf(largest):
        return largest
    return largest * rescaled_norm(largest)


class ArrayNamespace:
    """The standard functions of `std` as attributes, plus the extensions each
    library writes for itself (see NumpyXP, TorchXP)."""

    def __init__(self, std: Any):
        self.std = std
        for fn in STANDARD:
            setattr(self, fn, getattr(std, fn))

    def safe_norm(self, x: Any) -> float:
        """‖x‖ as a host float (on a device: a sync; for inline probes): one dot
        product, and a rescaled pass only when it left the trusted window."""
        v = self.flat_float(x)
        sq = self.dot(v, v)
        lo, hi = norm_window(self.numpy_dtype(v))
        if lo < sq < hi:
            return math.sqrt(sq)
        return scaled_norm(self.absmax(v), lambda m: math.sqrt(self.dot(v / m, v / m)))

    # per library: flat_float, dot, absmax, numpy_dtype (the pieces of safe_norm)
    def flat_float(self, x: Any) -> Any:
        raise NotImplementedError

    def dot(self, a: Any, b: Any) -> float:
        raise NotImplementedError

    def absmax(self, v: Any) -> float:
        raise NotImplementedError

    def numpy_dtype(self, v: Any) -> np.dtype:
        raise NotImplementedError
