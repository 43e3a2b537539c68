"""Accuracy on a data set's held-out part: one forward pass on the host in float64,
with the engine's current weights, through the network's one forward
(`model.network`) over NumPy kernels."""

from __future__ import annotations

import numpy as np

from ..model import network
from ..model.data import held_out
from ..model.spec import RunSpec
from ..xp import NUMPY

KERNELS = network.Kernels(xp=NUMPY, dense=lambda a, W, b, layer: a @ W.T + b)


def logits(spec: RunSpec, params: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """z(L+1) for inputs x; params is the flat [W(1), b(1), ..., W(L+1), b(L+1)]."""
    params = [np.asarray(p, dtype=np.float64) for p in params]
    return network.forward(network.layers(spec), KERNELS, np.asarray(x, np.float64), params)


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
