"""Deterministic weight initialization shared by both engines.

Weights are drawn in float64 with NumPy from the run's seed, then cast, so the
same config and seed give the same network on the tape and in torch.
"""

from __future__ import annotations

import math

import numpy as np

from .spec import RunSpec


def _orthogonal(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    # QR of a Gaussian matrix, signs fixed so the distribution is Haar
    rows, cols = max(fan_out, fan_in), min(fan_out, fan_in)
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    q = q * np.sign(np.diag(r))
    return q if fan_out >= fan_in else q.T


def init_weight(rng: np.random.Generator, scheme: str, fan_out: int, fan_in: int,
                sigma_w: float) -> np.ndarray:
    """One weight matrix (fan_out, fan_in).

    `normal` is the mean-field convention W ~ N(0, σ_w²/fan_in); for the named
    schemes σ_w is a gain on top of the scheme; `orthogonal` is scaled by σ_w.
    """
    shape = (fan_out, fan_in)
    if scheme == "normal":
        return rng.standard_normal(shape) * (sigma_w / math.sqrt(fan_in))
    if scheme == "orthogonal":
        return sigma_w * _orthogonal(rng, fan_out, fan_in)
    if scheme == "xavier_normal":
        return rng.standard_normal(shape) * (sigma_w * math.sqrt(2.0 / (fan_in + fan_out)))
    if scheme == "xavier_uniform":
        bound = sigma_w * math.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape)
    if scheme == "he_normal":
        return rng.standard_normal(shape) * (sigma_w * math.sqrt(2.0 / fan_in))
    if scheme == "he_uniform":
        bound = sigma_w * math.sqrt(6.0 / fan_in)
        return rng.uniform(-bound, bound, shape)
    if scheme == "lecun_normal":
        return rng.standard_normal(shape) * (sigma_w / math.sqrt(fan_in))
    if scheme == "standard":  # Glorot & Bengio 2010, eq. (1): U[−1/√n, 1/√n], n = fan_in
        bound = sigma_w / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape)
    raise ValueError(f"unknown init {scheme!r}")


def effective_sigma_w2(scheme: str, sigma_w: float, fan_in: int, fan_out: int) -> float:
    """σ_w² in the mean-field convention Var(W_ij) = σ_w²/fan_in, for any scheme."""
    var = {
        "normal": sigma_w**2 / fan_in,
        "orthogonal": sigma_w**2 / fan_in,
        "xavier_normal": sigma_w**2 * 2.0 / (fan_in + fan_out),
        "xavier_uniform": sigma_w**2 * 2.0 / (fan_in + fan_out),
        "he_normal": sigma_w**2 * 2.0 / fan_in,
        "he_uniform": sigma_w**2 * 2.0 / fan_in,
        "lecun_normal": sigma_w**2 / fan_in,
        "standard": sigma_w**2 / (3.0 * fan_in),  # Var U[−a, a] = a²/3
    }[scheme]
    return var * fan_in


def init_params(spec: RunSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W, b)] for the hidden layers then the output layer, float64.

    Biases: N(0, σ_b²) (zero when σ_b = 0).
    """
    rng = np.random.default_rng([spec.seed, 0x1417])
    params = []
    for fan_out, fan_in in spec.layer_sizes:
        W = init_weight(rng, spec.init, fan_out, fan_in, spec.sigma_w)
        b = rng.standard_normal(fan_out) * spec.sigma_b
        params.append((W, b))
    return params
