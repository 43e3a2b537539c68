"""Activations and their derivatives, written against an array namespace `xp`
(NumPy or the torch shim), so probes and theory share one definition."""

from __future__ import annotations

import math
from typing import Any

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_SLOPE = 0.01
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def activation(name: str, z: Any, xp: Any) -> Any:
    """φ(z)."""
    if name == "linear":
        return z
    if name == "relu":
        return xp.maximum(z, 0.0)
    if name == "leaky_relu":
        return xp.where(z > 0, z, LEAKY_SLOPE * z)
    if name == "tanh":
        return xp.tanh(z)
    if name == "sigmoid":
        return xp.sigmoid(z)
    if name == "gelu":
        return 0.5 * z * (1.0 + xp.erf(z * _INV_SQRT2))
    if name == "silu":
        return z * xp.sigmoid(z)
    if name == "softplus":
        return xp.softplus(z)
    if name == "elu":
        return xp.where(z > 0, z, xp.expm1(xp.minimum(z, 0.0)))
    if name == "selu":
        return SELU_SCALE * xp.where(z > 0, z, SELU_ALPHA * xp.expm1(xp.minimum(z, 0.0)))
    raise ValueError(f"unknown activation {name!r}")


def derivative(name: str, z: Any, xp: Any) -> Any:
    """φ'(z) (at a kink, the right-hand derivative's convention of the AD engines: 0)."""
    if name == "linear":
        return xp.ones_like(z)
    if name == "relu":
        return xp.where(z > 0, 1.0, 0.0) * xp.ones_like(z)
    if name == "leaky_relu":
        return xp.where(z > 0, 1.0, LEAKY_SLOPE) * xp.ones_like(z)
    if name == "tanh":
        t = xp.tanh(z)
        return 1.0 - t * t
    if name == "sigmoid":
        s = xp.sigmoid(z)
        return s * (1.0 - s)
    if name == "gelu":
        return 0.5 * (1.0 + xp.erf(z * _INV_SQRT2)) + z * _INV_SQRT_2PI * xp.exp(-0.5 * z * z)
    if name == "silu":
        s = xp.sigmoid(z)
        return s + z * s * (1.0 - s)
    if name == "softplus":
        return xp.sigmoid(z)
    if name == "elu":
        return xp.where(z > 0, 1.0, xp.exp(xp.minimum(z, 0.0)))
    if name == "selu":
        return SELU_SCALE * xp.where(z > 0, 1.0, SELU_ALPHA * xp.exp(xp.minimum(z, 0.0)))
    raise ValueError(f"unknown activation {name!r}")


# sup |φ'|: the reference for "saturated" (φ' below 5% of its maximum)
MAX_DERIVATIVE = {
    "linear": 1.0, "relu": 1.0, "leaky_relu": 1.0, "tanh": 1.0, "sigmoid": 0.25,
    "gelu": 1.1289, "silu": 1.0998, "softplus": 1.0, "elu": 1.0, "selu": SELU_SCALE * SELU_ALPHA,
}
