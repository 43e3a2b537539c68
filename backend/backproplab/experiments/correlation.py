"""The correlation map of two inputs through a random network and its depth scale
ξ_c (Poole et al. 2016; Schoenholz et al. 2017, eqs. 4–9).

At the length fixed point q*, with u₁ = √q* z₁, u₂ = √q* (c z₁ + √(1−c²) z₂):
  c ↦ (σ_w² E[φ(u₁)φ(u₂)] + σ_b²) / q*          (fixed point c*)
  χ_c = σ_w² E[φ'(u₁)φ'(u₂)] at c*,   ξ_c = −1/ln χ_c
In the ordered phase c* = 1 and χ_c = χ₁; ξ_c diverges on the order-to-chaos line.
Two-dimensional expectations use a 64 × 64 product Gauss–Hermite rule (φ and φ' are
smooth here: tanh and the like; a kinked φ would want the theory's split rule).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..model.activations import ACTIVATIONS
from ..theory.meanfield import chi1, q_star
from ..xp import NUMPY

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(64)  # weight e^{−z²/2}
_WEIGHTS = _WEIGHTS / math.sqrt(2.0 * math.pi)
_Z1, _Z2 = np.meshgrid(_NODES, _NODES, indexing="ij")
_W2D = np.outer(_WEIGHTS, _WEIGHTS)


def _pair_mean(fn, q: float, c: float) -> float:
    u1 = math.sqrt(q) * _Z1
    u2 = math.sqrt(q) * (c * _Z1 + math.sqrt(max(1.0 - c * c, 0.0)) * _Z2)
    return float(np.sum(fn(u1) * fn(u2) * _W2D))


def correlation_fixed_point(act: str, sigma_w2: float, sigma_b2: float,
                            iterations: int = 2000, tol: float = 1e-12) -> float:
    """c*: 1 in the ordered phase (χ₁ ≤ 1), else the stable fixed point below 1."""
    q = float(q_star(act, sigma_w2, sigma_b2))
    if q == 0.0 or not math.isfinite(q) or float(chi1(act, sigma_w2, q)) <= 1.0:
        return 1.0
    phi = lambda u: ACTIVATIONS[act].phi(u, NUMPY)
    c = 0.5
    for _ in range(iterations):
        new = min(1.0, (sigma_w2 * _pair_mean(phi, q, c) + sigma_b2) / q)
        if abs(new - c) < tol:
            return new
        c = new
    return c


@functools.lru_cache(maxsize=4096)
def xi_c(act: str, sigma_w2: float, sigma_b2: float) -> float:
    """ξ_c = −1/ln χ_c (inf at criticality)."""
    q = float(q_star(act, sigma_w2, sigma_b2))
    c = correlation_fixed_point(act, sigma_w2, sigma_b2)
    dphi = lambda u: ACTIVATIONS[act].dphi(u, NUMPY)
    chi_c = sigma_w2 * _pair_mean(dphi, q, c)
    if chi_c <= 0.0:
        return 0.0
    if abs(chi_c - 1.0) < 1e-12:
        return math.inf
    return -1.0 / math.log(chi_c)
