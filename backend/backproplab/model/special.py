"""erf for NumPy arrays: SciPy's when it is installed, otherwise math.erf
elementwise (slower, same values), so the numeric layers run wherever NumPy runs."""

from __future__ import annotations

import math

import numpy as np

try:
    from scipy.special import erf as _scipy_erf
except ImportError:  # a bare NumPy (+ torch) machine, e.g. a GPU box
    _scipy_erf = None

_math_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    if _scipy_erf is not None:
        return _scipy_erf(x)
    x = np.asarray(x)
    # np.asarray: for a 0-d input frompyfunc gives back a bare Python float
    return np.asarray(_math_erf(x)).astype(x.dtype if x.dtype.kind == "f" else np.float64)
