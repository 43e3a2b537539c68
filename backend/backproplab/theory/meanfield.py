"""Mean-field theory of signal and gradient propagation in random networks
(Poole et al. 2016; Schoenholz et al. 2017; Pennington, Schoenholz, Ganguli 2017).

With W ~ N(0, σ_w²/fan_in), b ~ N(0, σ_b²) and ξ standard normal:
  length map     q(l) = σ_w² E[φ(√q(l-1) ξ)²] + σ_b²
  susceptibility χ₁   = σ_w² E[φ'(√q* ξ)²]
  depth scale    ξ_∇  = −1/ln χ₁
Gaussian expectations use the closed forms the activation registry gives
(linear, relu, leaky_relu) and otherwise Gauss–Legendre quadrature on each half-line
separately: every activation here is smooth on either side of 0, so splitting
there keeps spectral accuracy (a Gauss–Hermite rule of odd order would put a
node exactly on relu's kink).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..model.activations import ACTIVATIONS
from ..xp import NUMPY

_CUTOFF = 12.0  # φ(12) ≈ 2e-32: the Gaussian tail beyond is below float64 resolution
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(120)
# nodes on [0, cutoff] mapped from [-1, 1], with the Gaussian density folded into the weights
_HALF_X = (_NODES + 1.0) * (_CUTOFF / 2.0)
_HALF_W = _WEIGHTS * (_CUTOFF / 2.0) * np.exp(-0.5 * _HALF_X**2) / math.sqrt(2.0 * math.pi)
XI = np.concatenate([-_HALF_X[::-1], _HALF_X])
XI_WEIGHTS = np.concatenate([_HALF_W[::-1], _HALF_W])


def gaussian_mean(fn, q: np.ndarray | float) -> np.ndarray:
    """E[fn(√q ξ)] for every q (any shape), ξ ~ N(0, 1)."""
    q = np.asarray(q, dtype=np.float64)
    h = np.sqrt(np.maximum(q, 0.0))[..., None] * XI
    return fn(h) @ XI_WEIGHTS


def mean_phi2(act: str, q) -> np.ndarray:
    """E[φ(√q ξ)²]."""
    q = np.asarray(q, dtype=np.float64)
    record = ACTIVATIONS[act]
    if record.mean_phi2 is not None:
        return record.mean_phi2(q)
    return gaussian_mean(lambda h: record.phi(h, NUMPY) ** 2, q)


def mean_dphi2(act: str, q, power: int = 1) -> np.ndarray:
    """E[φ'(√q ξ)^(2·power)]: μ₁ (power 1) and μ₂ (power 2) of the Jacobian theory."""
    q = np.asarray(q, dtype=np.float64)
    record = ACTIVATIONS[act]
    if record.mean_dphi2 is not None:
        return record.mean_dphi2(q, power)
    return gaussian_mean(lambda h: record.dphi(h, NUMPY) ** (2 * power), q)


def length_map(act: str, q, sigma_w2, sigma_b2) -> np.ndarray:
    return sigma_w2 * mean_phi2(act, q) + sigma_b2


def q_star(act: str, sigma_w2, sigma_b2, q0: float = 1.0, iterations: int = 3000,
           tol: float = 1e-13) -> np.ndarray:
    """The fixed point of the length map, by iteration from q0 (elementwise over
    grids). inf where q grows without bound; 0 where it decays to 0."""
    sigma_w2 = np.asarray(sigma_w2, dtype=np.float64)
    sigma_b2 = np.asarray(sigma_b2, dtype=np.float64)
    q = np.full(np.broadcast(sigma_w2, sigma_b2).shape, q0, dtype=np.float64)
    for _ in range(iterations):
        new = length_map(act, q, sigma_w2, sigma_b2)
        new = np.where(new > 1e12, np.inf, new)
        done = np.all((np.abs(new - q) <= tol * np.maximum(1.0, np.abs(q))) | ~np.isfinite(new))
        q = new
        if done:
            break
    return np.where(q < 1e-300, 0.0, q)


def chi1(act: str, sigma_w2, q) -> np.ndarray:
    """χ₁ = σ_w² E[φ'(√q ξ)²]: the per-layer factor of ‖δ‖² at length q."""
    q = np.asarray(q, dtype=np.float64)
    finite = np.where(np.isfinite(q), q, 1.0)
    out = sigma_w2 * mean_dphi2(act, finite)
    if ACTIVATIONS[act].scale_free:
        return out  # χ₁ does not depend on q
    # bounded φ': as q → ∞, E[φ'²] → 0 for saturating activations; use a large q instead
    big = sigma_w2 * mean_dphi2(act, np.full_like(finite, 1e8))
    return np.where(np.isfinite(q), out, big)


def xi_grad(chi: np.ndarray) -> np.ndarray:
    """ξ_∇ = −1/ln χ₁ (inf at criticality; negative where gradients explode)."""
    chi = np.asarray(chi, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(chi == 1.0, np.inf, -1.0 / np.log(chi))


def critical_curve(act: str, q_max: float = 100.0, points: int = 4000) -> tuple:
    """The order-to-chaos line parametrized by the fixed point q* (Poole et al. 2016):
    χ₁ = 1 at q* means σ_w² = 1/E[φ'(√q* ξ)²], and q* being fixed means
    σ_b² = q* − σ_w² E[φ(√q* ξ)²]. Returns (σ_w², σ_b²) along the line."""
    q = np.geomspace(1e-8, q_max, points)
    w2 = 1.0 / mean_dphi2(act, q)
    b2 = q - w2 * mean_phi2(act, q)
    return w2, b2


@functools.lru_cache(maxsize=256)
def critical_sigma_w2(act: str, sigma_b2: float) -> float:
    """σ_w² on the order-to-chaos line χ₁(q*) = 1 at this σ_b² (nan if none).

    Scale-free activations (relu, leaky_relu): χ₁ = σ_w² E[φ'²] whatever q*, so the
    line is a constant (their fixed point exists there only for σ_b² = 0)."""
    if ACTIVATIONS[act].scale_free:
        return float(1.0 / mean_dphi2(act, 1.0))
    w2, b2 = critical_curve(act)
    if sigma_b2 <= b2[0]:
        return float(w2[0])
    crossings = np.nonzero((b2[:-1] - sigma_b2) * (b2[1:] - sigma_b2) <= 0)[0]
    candidates = []
    for i in crossings:
        t = (sigma_b2 - b2[i]) / (b2[i + 1] - b2[i]) if b2[i + 1] != b2[i] else 0.0
        candidates.append(float(w2[i] + t * (w2[i + 1] - w2[i])))
    # a non-odd φ (gelu, silu...) can have several fixed points: keep the crossing whose
    # fixed point is the one the length map reaches from q = 1
    for w in candidates:
        if abs(float(chi1(act, w, q_star(act, w, sigma_b2))) - 1.0) < 1e-4:
            return w
    return candidates[0] if candidates else math.nan


def jacobian_moments(act: str, sigma_w2s: list[float], qs: list[float],
                     orthogonal: bool) -> tuple[float, float]:
    """Mean of λ (squared singular values of J = ∏ D_l W_l) and its normalized
    variance σ²_λ / mean², in the wide limit (Pennington, Schoenholz, Ganguli 2017):
      mean = ∏ σ_w² μ₁(q_l),   σ²/mean² = Σ_l (μ₂/μ₁² − 1 − s₁),
    with μ_k = E[φ'^(2k)] and s₁ = −1 for Gaussian weights, 0 for orthogonal ones."""
    s1 = 0.0 if orthogonal else -1.0
    mean, variance = 1.0, 0.0
    for w2, q in zip(sigma_w2s, qs, strict=True):
        mu1 = float(mean_dphi2(act, q, 1))
        mu2 = float(mean_dphi2(act, q, 2))
        mean *= w2 * mu1
        variance += mu2 / mu1**2 - 1.0 - s1
    return mean, variance
