"""The initialization registry and the deterministic initialization shared by all
engines.

Weights are drawn in float64 with NumPy from the run's seed, then cast, so the
same config and seed give the same network on every engine. Each scheme is one
record: its distribution and its variance per unit gain, Var(W_ij)/σ_w² as a
function of the shape, from which the theory's effective σ_w² follows.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the spec's choices come from this registry: no import at run time
    from .spec import RunSpec


@dataclass(frozen=True)
class Init:
    """distribution: "normal", "uniform" (U(−b, b) with b = √(3·Var)) or "orthogonal"
    (Haar, scaled by σ_w); variance(fan_in, fan_out) = Var(W_ij)/σ_w²."""

    name: str
    distribution: str
    variance: Callable[[int, int], float]


def _fan_in(fan_in: int, fan_out: int) -> float:
    return 1.0 / fan_in


def _glorot(fan_in: int, fan_out: int) -> float:
    return 2.0 / (fan_in + fan_out)


def _he(fan_in: int, fan_out: int) -> float:
    return 2.0 / fan_in


def _standard(fan_in: int, fan_out: int) -> float:
    # Glorot & Bengio 2010, eq. (1): U[−1/√n, 1/√n] with n = fan_in, so Var = 1/(3n)
    return 1.0 / (3.0 * fan_in)


def _orthonormal(fan_in: int, fan_out: int) -> float:
    # orthonormal columns (fan_out ≥ fan_in) or rows: unit vectors of the longer side
    return 1.0 / max(fan_in, fan_out)


INITS: dict[str, Init] = {i.name: i for i in (
    Init("xavier_uniform", "uniform", _glorot),
    Init("xavier_normal", "normal", _glorot),
    Init("he_uniform", "uniform", _he),
    Init("he_normal", "normal", _he),
    Init("lecun_normal", "normal", _fan_in),
    Init("orthogonal", "orthogonal", _orthonormal),
    Init("normal", "normal", _fan_in),  # the mean-field convention N(0, σ_w²/fan_in)
    Init("standard", "uniform", _standard),  # Glorot's "standard": σ_w² = 1/3
)}
INIT_NAMES: tuple[str, ...] = tuple(INITS)


def _orthogonal(rng: np.random.Generator, fan_out: int, fan_in: int) -> np.ndarray:
    # QR of a Gaussian matrix, signs fixed so the distribution is Haar
    rows, cols = max(fan_out, fan_in), min(fan_out, fan_in)
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    q = q * np.sign(np.diag(r))
    return q if fan_out >= fan_in else q.T


def init_weight(rng: np.random.Generator, scheme: str, fan_out: int, fan_in: int,
                sigma_w: float) -> np.ndarray:
    """One weight matrix (fan_out, fan_in); σ_w is a gain on top of the scheme."""
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r} (known: {', '.join(INIT_NAMES)})")
    init = INITS[scheme]
    if init.distribution == "orthogonal":
        return sigma_w * _orthogonal(rng, fan_out, fan_in)
    std = sigma_w * math.sqrt(init.variance(fan_in, fan_out))
    if init.distribution == "uniform":
        bound = math.sqrt(3.0) * std
        return rng.uniform(-bound, bound, (fan_out, fan_in))
    return rng.standard_normal((fan_out, fan_in)) * std


def effective_sigma_w2(scheme: str, sigma_w: float, fan_in: int, fan_out: int) -> float:
    """σ_w² in the mean-field convention Var(W_ij) = σ_w²/fan_in, for any scheme."""
    return sigma_w**2 * INITS[scheme].variance(fan_in, fan_out) * fan_in


class InitStopped(Exception):
    """Building the weights stopped between two layers: the run was cancelled."""


_should_stop: ContextVar[Callable[[], bool] | None] = ContextVar("init_stop", default=None)


@contextlib.contextmanager
def stoppable(should_stop: Callable[[], bool]) -> Iterator[None]:
    """init_params in this context asks should_stop() before each layer (a 4096-wide
    orthogonal layer is a QR of ~10 s) and raises InitStopped when it says so."""
    token = _should_stop.set(should_stop)
    try:
        yield
    finally:
        _should_stop.reset(token)


def init_params(spec: RunSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(W, b)] for the hidden layers then the output layer, float64.

    Biases: N(0, σ_b²) (zero when σ_b = 0).
    """
    rng = np.random.default_rng([spec.seed, 0x1417])
    params = []
    should_stop = _should_stop.get()
    for fan_out, fan_in in spec.layer_sizes:
        if should_stop is not None and should_stop():
            raise InitStopped()
        W = init_weight(rng, spec.init, fan_out, fan_in, spec.sigma_w)
        b = rng.standard_normal(fan_out) * spec.sigma_b
        params.append((W, b))
    return params
