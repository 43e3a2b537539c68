"""The activation registry: one record per activation, everything any layer needs.

φ and φ′ are written once against an array namespace `xp` (backproplab.xp: NumPy or
torch), so the probes, the Jacobian and the theory share one definition. The engines'
kernels are referenced, never imported here: the tape primitive by its name in
`backproplab.tape.ops`, the torch kernels as functions of the `torch` module, so
importing `model` or `theory` loads neither the tape nor torch.

Adding an activation: one `Activation(...)` entry below and one row of expectations in
tests/test_activations.py; every choice list (spec, API, CLI, UI) derives from
`ACTIVATIONS`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
LEAKY_SLOPE = 0.01
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

Kernel = Callable[..., Any]


@dataclass(frozen=True)
class Activation:
    """φ, φ′, sup|φ′|, the kernels of every engine and the theory's Gaussian moments.

    torch_forward(torch) -> u ↦ φ(u); torch_backward(torch) -> (∂y, u, y=φ(u)) ↦ ∂u, with
    the kernels autograd itself uses. jax_forward(jax) -> u ↦ φ(u): the JAX engine's
    kernel, which jax.grad differentiates (at a kink the other engines' derivative:
    relu′(0) = 0, leaky_relu′(0) = slope, elu′(0) = 1). mean_phi2(q) = E[φ(√q ξ)²] and
    mean_dphi2(q, power) = E[φ′(√q ξ)^(2·power)] in closed form where one exists
    (None: the theory integrates φ and φ′ numerically). scale_free: φ(cx) = cφ(x) for
    c > 0, so χ₁ does not depend on the length q."""

    name: str
    phi: Callable[[Any, Any], Any]
    dphi: Callable[[Any, Any], Any]
    max_derivative: float
    tape: str
    torch_forward: Callable[[Any], Kernel]
    torch_backward: Callable[[Any], Kernel]
    jax_forward: Callable[[Any], Kernel] | None = None
    mean_phi2: Callable[[np.ndarray], np.ndarray] | None = None
    mean_dphi2: Callable[[np.ndarray, int], np.ndarray] | None = None
    scale_free: bool = False

    def tape_primitive(self) -> Kernel:
        """The primitive (or composite) of backproplab.tape.ops, looked up by name."""
        return getattr(importlib.import_module("backproplab.tape.ops"), self.tape)


def _relu_backward(torch):
    return lambda g, u, y: torch.ops.aten.threshold_backward(g, y, 0)


def _ones(z, xp):
    return xp.ones_like(z)


def _step(z, xp, left: float):
    """1 for z > 0, `left` otherwise (at the kink: the AD engines' convention, 0 side),
    in z's dtype (two Python floats would give torch's default float32)."""
    one = xp.ones_like(z)
    return xp.where(z > 0, one, left * one)


def _elu(z, xp, alpha: float):
    return xp.where(z > 0, z, alpha * xp.expm1(xp.minimum(z, 0.0)))


def _gelu(z, xp):
    return 0.5 * z * (1.0 + xp.erf(z * _INV_SQRT2))


def _gelu_prime(z, xp):
    # Φ(z) + z φ(z)
    return 0.5 * (1.0 + xp.erf(z * _INV_SQRT2)) + z * _INV_SQRT_2PI * xp.exp(-0.5 * z * z)


def _silu_prime(z, xp):
    s = xp.sigmoid(z)
    return s + z * s * (1.0 - s)


def _tanh_prime(z, xp):
    t = xp.tanh(z)
    return 1.0 - t * t


def _sigmoid_prime(z, xp):
    s = xp.sigmoid(z)
    return s * (1.0 - s)


def _aten(name: str, *extra: Any):
    """A torch backward kernel aten.<name>(∂y, u, *extra)."""
    return lambda torch: (lambda g, u, y: getattr(torch.ops.aten, name)(g, u, *extra))


_ENTRIES = [
    Activation(
        "linear", phi=lambda z, xp: z, dphi=_ones, max_derivative=1.0, tape="linear",
        torch_forward=lambda torch: (lambda u: u),
        torch_backward=lambda torch: (lambda g, u, y: g),
        mean_phi2=lambda q: q, mean_dphi2=lambda q, power: np.ones_like(q), scale_free=True,
        jax_forward=lambda jax: (lambda u: u)),
    Activation(
        "relu", phi=lambda z, xp: xp.maximum(z, 0.0), dphi=lambda z, xp: _step(z, xp, 0.0),
        max_derivative=1.0, tape="relu",
        torch_forward=lambda torch: torch.nn.functional.relu, torch_backward=_relu_backward,
        mean_phi2=lambda q: q / 2.0, mean_dphi2=lambda q, power: np.full_like(q, 0.5),
        scale_free=True,
        jax_forward=lambda jax: jax.nn.relu),
    Activation(
        "leaky_relu", phi=lambda z, xp: xp.where(z > 0, z, LEAKY_SLOPE * z),
        dphi=lambda z, xp: _step(z, xp, LEAKY_SLOPE), max_derivative=1.0, tape="leaky_relu",
        torch_forward=lambda torch: (
            lambda u: torch.nn.functional.leaky_relu(u, LEAKY_SLOPE)),
        torch_backward=lambda torch: (
            lambda g, u, y: torch.ops.aten.leaky_relu_backward(g, u, LEAKY_SLOPE, False)),
        mean_phi2=lambda q: q * (1.0 + LEAKY_SLOPE**2) / 2.0,
        mean_dphi2=lambda q, power: np.full_like(q, (1.0 + LEAKY_SLOPE ** (2 * power)) / 2.0),
        scale_free=True,
        jax_forward=lambda jax: (lambda u: jax.numpy.where(u > 0, u, LEAKY_SLOPE * u))),
    Activation(
        "tanh", phi=lambda z, xp: xp.tanh(z), dphi=_tanh_prime, max_derivative=1.0,
        tape="tanh", torch_forward=lambda torch: torch.tanh,
        torch_backward=lambda torch: (lambda g, u, y: torch.ops.aten.tanh_backward(g, y)),
        jax_forward=lambda jax: jax.numpy.tanh),
    Activation(
        "sigmoid", phi=lambda z, xp: xp.sigmoid(z), dphi=_sigmoid_prime, max_derivative=0.25,
        tape="sigmoid", torch_forward=lambda torch: torch.sigmoid,
        torch_backward=lambda torch: (lambda g, u, y: torch.ops.aten.sigmoid_backward(g, y)),
        jax_forward=lambda jax: jax.nn.sigmoid),
    Activation(
        "gelu", phi=_gelu, dphi=_gelu_prime, max_derivative=1.1289, tape="gelu",
        torch_forward=lambda torch: torch.nn.functional.gelu,
        torch_backward=_aten("gelu_backward"),
        jax_forward=lambda jax: (lambda u: jax.nn.gelu(u, approximate=False))),
    Activation(
        "silu", phi=lambda z, xp: z * xp.sigmoid(z), dphi=_silu_prime, max_derivative=1.0998,
        tape="silu", torch_forward=lambda torch: torch.nn.functional.silu,
        torch_backward=_aten("silu_backward"),
        jax_forward=lambda jax: jax.nn.silu),
    Activation(
        "softplus", phi=lambda z, xp: xp.softplus(z), dphi=lambda z, xp: xp.sigmoid(z),
        max_derivative=1.0, tape="softplus",
        torch_forward=lambda torch: torch.nn.functional.softplus,
        torch_backward=_aten("softplus_backward", 1.0, 20.0),
        jax_forward=lambda jax: jax.nn.softplus),
    Activation(
        "elu", phi=lambda z, xp: _elu(z, xp, 1.0),
        dphi=lambda z, xp: xp.where(z > 0, 1.0, xp.exp(xp.minimum(z, 0.0))),
        max_derivative=1.0, tape="elu", torch_forward=lambda torch: torch.nn.functional.elu,
        torch_backward=lambda torch: (
            lambda g, u, y: torch.ops.aten.elu_backward(g, 1.0, 1.0, 1.0, False, u)),
        jax_forward=lambda jax: jax.nn.elu),
    Activation(
        "selu", phi=lambda z, xp: SELU_SCALE * _elu(z, xp, SELU_ALPHA),
        dphi=lambda z, xp: SELU_SCALE * xp.where(z > 0, 1.0,
                                                 SELU_ALPHA * xp.exp(xp.minimum(z, 0.0))),
        max_derivative=SELU_SCALE * SELU_ALPHA, tape="selu",
        torch_forward=lambda torch: torch.nn.functional.selu,
        torch_backward=lambda torch: (
            lambda g, u, y: torch.ops.aten.elu_backward(g, SELU_ALPHA, SELU_SCALE, 1.0, False,
                                                        u)),
        jax_forward=lambda jax: jax.nn.selu),
]

ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _ENTRIES}
ACTIVATION_NAMES: tuple[str, ...] = tuple(ACTIVATIONS)


def get(name: str) -> Activation:
    """The record of an activation, or a ValueError naming the known ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r} (known: "
                         f"{', '.join(ACTIVATION_NAMES)})") from None
