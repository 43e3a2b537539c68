"""The network's structure, written once: its layers and the order of the pieces of
each one, forward, backward (VJP) and tangent (JVP), over a kernel set.

Layer l (hidden): z(l) = W(l) a(l-1) + b(l), u(l) = N(z(l)), y(l) = φ(u(l)),
a(l) = a(l-1) + α·y(l) with a skip connection, a(l) = y(l) otherwise; the output
layer is z(L+1) = W(L+1) a(L) + b(L+1). Arrays hold examples as rows.

The engines, the stepper's inspection, the Jacobian spectrum and the measured
phase diagram differ only in their `Kernels`: how z = a Wᵀ + b, φ and the rest are
computed (tape primitives, torch or NumPy calls, batched over many networks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .activations import ACTIVATIONS, Activation
from .norms import NORMS, Norm

if TYPE_CHECKING:
    from .spec import RunSpec


@dataclass(frozen=True)
class Layer:
    """One layer: its shape, activation and norm (the output layer: linear, none), and
    the residual branch scale α (None: no skip connection)."""

    index: int
    fan_in: int
    fan_out: int
    activation: Activation
    norm: Norm
    alpha: float | None = None

    @property
    def residual(self) -> bool:
        return self.alpha is not None


def stack(widths: list[int], activation: str, norm: str = "none", residual: bool = False,
          alpha: float = 1.0) -> list[Layer]:
    """Hidden layers mapping widths[0] → ... → widths[-1]; a skip connection where
    `residual` and the layer keeps its width."""
    act, nrm = ACTIVATIONS[activation], NORMS[norm]
    return [Layer(i, fan_in, fan_out, act, nrm,
                  alpha if residual and fan_in == fan_out else None)
            for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))]


def layers(spec: RunSpec) -> list[Layer]:
    """The run's layers: the hidden ones, then the output layer (linear, no norm)."""
    hidden = stack([spec.in_features] + [spec.width] * spec.depth, spec.activation,
                   spec.norm, spec.residual, spec.alpha)
    out = Layer(spec.depth, spec.width, spec.out_features, ACTIVATIONS["linear"],
                NORMS["none"])
    return hidden + [out]


def _matmul_t(x: Any, W: Any) -> Any:
    return x @ W.T


def _matmul(g: Any, W: Any) -> Any:
    return g @ W


def _residual(a: Any, y: Any, alpha: float) -> Any:
    return a + alpha * y


def _add(x: Any, y: Any) -> Any:
    return x + y


@dataclass(frozen=True)
class Kernels:
    """How one engine computes the pieces of a layer.

    dense(a, W, b, layer) = a Wᵀ + b; activation(u, layer) = φ(u) and
    activation_vjp(∂y, u, y, layer) = ∂y ⊙ φ′(u) (None: the registry's φ, φ′ in xp);
    matmul_t(x, W) = x Wᵀ (tangents); matmul(g, W) = g W (cotangents);
    param_grads(δ, a) = (δᵀ a, Σ δ) or None;
    residual(a, y, α) = a + α y; accumulate(g, h) = g + h (may reuse g's memory).
    xp: the namespace the norms are written in (mean, sqrt)."""

    xp: Any
    dense: Callable[[Any, Any, Any, Layer], Any]
    activation: Callable[[Any, Layer], Any] | None = None
    activation_vjp: Callable[[Any, Any, Any, Layer], Any] | None = None
    matmul_t: Callable[[Any, Any], Any] = _matmul_t
    matmul: Callable[[Any, Any], Any] = _matmul
    param_grads: Callable[[Any, Any], tuple[Any, Any]] | None = None
    residual: Callable[[Any, Any, float], Any] = _residual
    accumulate: Callable[[Any, Any], Any] = _add

    def phi(self, u: Any, layer: Layer) -> Any:
        if self.activation is not None:
            return self.activation(u, layer)
        return layer.activation.phi(u, self.xp)

    def phi_prime_vjp(self, g: Any, u: Any, y: Any, layer: Layer) -> Any:
        if self.activation_vjp is not None:
            return self.activation_vjp(g, u, y, layer)
        return g * layer.activation.dphi(u, self.xp)


@dataclass
class LayerValues:
    """What a layer's forward leaves for its backward: a(l-1), z, u = N(z), the norm's
    inverse scale (or None), y = φ(u), a(l)."""

    a_in: Any
    z: Any
    u: Any
    inv: Any
    y: Any
    a_out: Any


def layer_forward(layer: Layer, k: Kernels, a: Any, W: Any, b: Any) -> LayerValues:
    z = k.dense(a, W, b, layer)
    u, inv = layer.norm.forward(z, k.xp)
    y = k.phi(u, layer)
    a_out = k.residual(a, y, layer.alpha) if layer.residual else y  # a(l-1) + α·φ(u(l))
    return LayerValues(a, z, u, inv, y, a_out)


def layer_delta(layer: Layer, k: Kernels, g_a: Any, v: LayerValues) -> Any:
    """δ(l) = ∂loss/∂z(l) from g = ∂loss/∂a(l): N(u)ᵀ (c·g ⊙ φ′(u)), c = α or 1."""
    g_y = g_a * layer.alpha if layer.residual else g_a
    return layer.norm.vjp(k.phi_prime_vjp(g_y, v.u, v.y, layer), v.u, v.inv, k.xp)


def layer_input_grad(layer: Layer, k: Kernels, delta: Any, g_a: Any, W: Any) -> Any:
    """∂loss/∂a(l-1) = δ(l) W(l) (+ g through the skip connection)."""
    g_prev = k.matmul(delta, W)
    return k.accumulate(g_prev, g_a) if layer.residual else g_prev


def layer_vjp(layer: Layer, k: Kernels, g_a: Any, v: LayerValues, W: Any) -> Any:
    """g(l-1) from g(l), through layer l: the backward recurrence
    δ(l) = (W(l+1)ᵀ δ(l+1)) ⊙ φ′(z(l)) with the norm and the skip connection."""
    return layer_input_grad(layer, k, layer_delta(layer, k, g_a, v), g_a, W)


def layer_jvp(layer: Layer, k: Kernels, t_a: Any, v: LayerValues, W: Any) -> Any:
    """The tangent of a(l) from that of a(l-1): J_l t = c·φ′(u) ⊙ N(W t) (+ t)."""
    t_u = layer.norm.vjp(k.matmul_t(t_a, W), v.u, v.inv, k.xp)  # N is symmetric
    t_y = k.phi_prime_vjp(t_u, v.u, v.y, layer)
    return k.residual(t_a, t_y, layer.alpha) if layer.residual else t_y


def forward(net: list[Layer], k: Kernels, x: Any, params: list,
            on_layer: Callable[[Layer, LayerValues], None] | None = None) -> Any:
    """The output z(L+1) for input x; params = [W(1), b(1), ..., W(L+1), b(L+1)].
    on_layer(layer, values) after each hidden layer."""
    a = x
    for layer in net[:-1]:
        values = layer_forward(layer, k, a, params[2 * layer.index], params[2 * layer.index + 1])
        if on_layer is not None:
            on_layer(layer, values)
        a = values.a_out
    out = net[-1]
    return k.dense(a, params[2 * out.index], params[2 * out.index + 1], out)
