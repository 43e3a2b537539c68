"""Statistics both reductions share: the histogram written for any namespace, the
saturation rule, the sampled units."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ...model.activations import ACTIVATIONS
from ...xp import NUMPY

SATURATION = 0.05  # φ'(u) below 5% of its maximum counts as saturated


def histograms(xp: Any, values: Any, bins: int) -> tuple[Any, Any, Any]:
    """Per-layer histograms of the finite entries of values (L, M): lo (L,), hi (L,),
    counts (L, bins), bin edges uniform on [lo, hi], the largest value in the last bin.
    No branch on the data (on a device: no host sync), about 20 operations."""
    layers = values.shape[0]
    valid = xp.isfinite(values)
    lo = xp.min(xp.where(valid, values, math.inf), axis=1)
    hi = xp.max(xp.where(valid, values, -math.inf), axis=1)
    some = hi >= lo  # False for a layer without a finite value (lo = inf, hi = -inf)
    lo = xp.where(some, lo, 0.0)
    hi = xp.where(some, hi, 0.0)
    scale = bins / xp.maximum(hi - lo, 1e-12)  # 0 when hi - lo overflows
    pos = xp.clip(xp.floor((values - lo[:, None]) * scale[:, None]), 0, bins - 1)
    # non-finite values, and positions that are not finite (∞·0 when hi - lo
    # overflows), go to an overflow bin, cut off below
    idx = xp.to_int(xp.where(valid & xp.isfinite(pos), pos, float(bins)))
    counts = xp.bincount(idx + xp.arange(layers, values)[:, None] * (bins + 1),
                         layers * (bins + 1))
    return lo, hi, counts.reshape(layers, bins + 1)[:, :bins]


@functools.cache
def saturation_rule(activation: str) -> tuple[float, float]:
    """(c_lo, c_hi) with φ'(u) < 5% of sup φ'  ⇔  u ≤ c_lo or u ≥ c_hi (±inf: no such
    side). Found once from φ' itself (a scan, then bisection at each switch), so the
    probes compare instead of evaluating tanh, erf or exp on every value."""
    act = ACTIVATIONS[activation]
    limit = SATURATION * act.max_derivative

    def saturated(u):
        return np.asarray(act.dphi(np.asarray(u, dtype=np.float64), NUMPY) < limit)

    grid = np.linspace(-60.0, 60.0, 120_001)
    mask = saturated(grid)
    switches = np.flatnonzero(mask[1:] != mask[:-1])
    if len(switches) > 2 or (len(switches) == 2 and not mask[0]) or \
            (len(switches) == 1 and mask[0] == mask[-1]):
        raise ValueError(f"saturation of {activation!r} is not one- or two-sided")

    def edge(i):  # bisect between grid[i] and grid[i+1]: the last saturated point
        a, b = grid[i], grid[i + 1]
        inside_left = bool(mask[i])
        for _ in range(80):
            m = 0.5 * (a + b)
            if bool(saturated(m)) == inside_left:
                a = m
            else:
                b = m
        return a if inside_left else b

    c_lo, c_hi = -math.inf, math.inf
    for i in switches:
        if mask[i]:
            c_lo = float(edge(i))
        else:
            c_hi = float(edge(i))
    if not switches.size and mask[0]:
        c_lo = math.inf  # saturated everywhere (no activation here is)
    return c_lo, c_hi


def saturated_fraction(xp: Any, activation: str, u: Any) -> Any:
    """Per layer of u (L, n, W): the fraction of values where φ' is saturated."""
    c_lo, c_hi = saturation_rule(activation)
    if c_lo == -math.inf and c_hi == math.inf:
        return 0.0 * xp.mean(u, axis=(1, 2))
    mask = None
    if c_lo > -math.inf:
        mask = u <= c_lo
    if c_hi < math.inf:
        mask = (u >= c_hi) if mask is None else (mask | (u >= c_hi))
    return xp.mean(xp.as_dtype(mask, u), axis=(1, 2))


@functools.cache
def sampled_units(seed: int, width: int, count: int) -> np.ndarray:
    """The hidden units whose δ components are sampled: fixed for a run."""
    units = np.random.default_rng([seed, 0x5A4D]).permutation(width)[:count]
    units.flags.writeable = False
    return units
