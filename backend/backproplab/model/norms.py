"""The normalization registry: what may sit between z(l) and φ.

Written once against an array namespace `xp` with `mean(x, axis, keepdims)` and
`sqrt` (backproplab.xp, or backproplab.tape.ops for the tape), over the last axis
(the units), so the engines, the probes and the Jacobian share one definition and
one ε.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LAYERNORM_EPS = 1e-5


def _identity(z: Any, xp: Any) -> tuple[Any, Any]:
    return z, None


def _identity_vjp(g: Any, u: Any, inv: Any, xp: Any) -> Any:
    return g


def _layernorm(z: Any, xp: Any) -> tuple[Any, Any]:
    """u = (z − mean z) / s with s = √(var z + ε), no learned affine; returns (u, 1/s)."""
    centred = z - xp.mean(z, axis=-1, keepdims=True)
    inv = 1.0 / xp.sqrt(xp.mean(centred * centred, axis=-1, keepdims=True) + LAYERNORM_EPS)
    return centred * inv, inv


def _layernorm_vjp(g: Any, u: Any, inv: Any, xp: Any) -> Any:
    """∂z = (∂u − mean ∂u − u·mean(∂u ⊙ u)) / s. The Jacobian is symmetric, so this is
    also its JVP."""
    return inv * (g - xp.mean(g, axis=-1, keepdims=True)
                  - u * xp.mean(g * u, axis=-1, keepdims=True))


@dataclass(frozen=True)
class Norm:
    """forward(z, xp) -> (u, inverse scale or None); vjp(∂u, u, inverse scale, xp) -> ∂z."""

    name: str
    forward: Callable[[Any, Any], tuple[Any, Any]]
    vjp: Callable[[Any, Any, Any, Any], Any]


NORMS: dict[str, Norm] = {n.name: n for n in (
    Norm("none", _identity, _identity_vjp),
    Norm("layernorm", _layernorm, _layernorm_vjp),
)}
NORM_NAMES: tuple[str, ...] = tuple(NORMS)
