"""Gaussian expectations tabulated once per activation, for whole grids at once.

E[φ(√q ξ)²] and E[φ'(√q ξ)²] depend on q alone, so a phase diagram (hundreds of
(σ_w², σ_b²) points, each iterated through the length map for many layers) needs
them at thousands of q values. Each is computed once, by the quadrature of
`meanfield`, on a uniform grid in ln q, and read back by 4-point Lagrange
interpolation of ln E[·] in ln q: both are positive and smooth in ln q for every
activation here (interpolation error ∝ h⁴, h = 0.018 in ln q). Values of q
outside the table are computed directly. The tables match the direct quadrature
to ~5e-10 relative (tests/test_theory.py).
"""

from __future__ import annotations

import functools

import numpy as np

from ..model.activations import ACTIVATIONS

_LN_Q_MIN, _LN_Q_MAX = np.log(1e-12), np.log(1e12)
_POINTS = 3073
_STEP = (_LN_Q_MAX - _LN_Q_MIN) / (_POINTS - 1)
# tanh and sigmoid saturate: past q ≈ 1e4 their φ' is a spike narrower than the
# quadrature resolves, E[·] is no longer smooth in ln q, and it is computed directly
SATURATING = ("tanh", "sigmoid")
_BOUNDED_TOP = (np.log(1e4) - _LN_Q_MIN) / _STEP - 2.0


@functools.lru_cache(maxsize=64)
def _table(act: str, which: str) -> np.ndarray:
    from .meanfield import mean_dphi2, mean_phi2

    q = np.exp(np.linspace(_LN_Q_MIN, _LN_Q_MAX, _POINTS))
    values = mean_phi2(act, q) if which == "phi2" else mean_dphi2(act, q)
    return np.log(values)


@functools.lru_cache(maxsize=64)
def _usable(act: str, which: str) -> np.ndarray:
    """usable[i]: the nodes i−1 … i+2 of the table are all finite."""
    finite = np.isfinite(_table(act, which))
    usable = np.zeros(_POINTS, dtype=bool)
    usable[1:-2] = finite[:-3] & finite[1:-2] & finite[2:-1] & finite[3:]
    return usable


def lookup(act: str, which: str, q: np.ndarray) -> np.ndarray:
    """E[φ(√q ξ)²] (which="phi2") or E[φ'(√q ξ)²] (which="dphi2") for every q."""
    from .meanfield import mean_dphi2, mean_phi2

    q = np.asarray(q, dtype=np.float64)
    direct = mean_phi2 if which == "phi2" else mean_dphi2
    record = ACTIVATIONS[act]
    if (record.mean_phi2 if which == "phi2" else record.mean_dphi2) is not None:
        return direct(act, q)  # a closed form already: nothing to tabulate
    table = _table(act, which)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (np.log(q) - _LN_Q_MIN) / _STEP
    top = _BOUNDED_TOP if act in SATURATING else _POINTS - 3.0
    inside = (t >= 1.0) & (t <= top)
    start = np.floor(np.where(inside, t, 1.0)).astype(np.intp)
    inside &= _usable(act, which)[start]  # all four nodes finite (E[φ'²] can underflow)
    out = np.empty(q.shape)
    ts = t[inside]
    i = start[inside]
    u = ts - i  # in [0, 1): nodes at −1, 0, 1, 2 relative to i
    w_m1 = -u * (u - 1.0) * (u - 2.0) / 6.0
    w_0 = (u + 1.0) * (u - 1.0) * (u - 2.0) / 2.0
    w_1 = -(u + 1.0) * u * (u - 2.0) / 2.0
    w_2 = (u + 1.0) * u * (u - 1.0) / 6.0
    out[inside] = np.exp(w_m1 * table[i - 1] + w_0 * table[i] + w_1 * table[i + 1]
                         + w_2 * table[i + 2])
    outside = ~inside
    if outside.any():
        out[outside] = direct(act, q[outside])
    return out
