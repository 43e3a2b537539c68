"""Accuracy on a data set's held-out part: one forward pass on the host in float64,
with the engine's current weights (the same layer math as the engines' forward)."""

from __future__ import annotations

import numpy as np

from ..model.activations import activation
from ..model.data import held_out
from ..model.spec import RunSpec
from .xp import NumpyXP

LAYERNORM_EPS = 1e-5


def logits(spec: RunSpec, params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """z(L+1) for inputs x; params is the flat [W(1), b(1), ..., W(L+1), b(L+1)]."""
    h = np.asarray(x, dtype=np.float64)
    for index in range(spec.depth):
        W, b = (np.asarray(p, dtype=np.float64) for p in params[2 * index:2 * index + 2])
        z = h @ W.T + b
        if spec.norm == "layernorm":
            centred = z - z.mean(axis=-1, keepdims=True)
            z = centred / np.sqrt((centred * centred).mean(axis=-1, keepdims=True)
                                  + LAYERNORM_EPS)
        y = activation(spec.activation, z, NumpyXP)
        h = h + spec.alpha * y if spec.is_residual_layer(index) else y  # a(l-1) + α·σ(z(l))
    W_out, b_out = (np.asarray(p, dtype=np.float64) for p in params[-2:])
    return h @ W_out.T + b_out


def held_out_accuracy(spec: RunSpec, params: list[np.ndarray]) -> float | None:
    """Fraction of the held-out examples classified right (None: no held-out part).
    A non-finite network predicts nothing: its rows count as wrong."""
    data = held_out(spec)
    if data is None:
        return None
    x, labels = data
    with np.errstate(all="ignore"):
        out = logits(spec, params, x)
    finite = np.all(np.isfinite(out), axis=1)
    predicted = np.argmax(np.where(np.isfinite(out), out, -np.inf), axis=1)
    return float(np.mean(finite & (predicted == labels)))
