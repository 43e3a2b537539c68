"""What theory predicts for one run: the fixed point, χ₁, depth scale, and the
per-layer profiles of ‖δ(l)‖² and ‖∇W(l)‖² along the actual trajectory q(l)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.init import effective_sigma_w2
from ..model.spec import RunSpec
from .meanfield import (
    chi1,
    critical_sigma_w2,
    jacobian_moments,
    mean_dphi2,
    mean_phi2,
    q_star,
    xi_grad,
)

MIN_WIDTH = 16  # below this the wide-network approximation is too rough to draw


def trajectory(spec: RunSpec, q_in: float) -> dict[str, list[float]]:
    """q(l) (pre-activation length), p(l) (mean a(l)² per unit) and σ_w²(l) per layer.

    Residual layers: a(l) = a(l-1) + α φ(z(l)) adds α²E[φ²] to p (the branch is
    uncorrelated with its input in the wide limit)."""
    sigma_b2 = spec.sigma_b**2
    qs, ps, w2s = [], [], []
    p = q_in
    for index, (fan_out, fan_in) in enumerate(spec.layer_sizes[:-1]):
        w2 = effective_sigma_w2(spec.init, spec.sigma_w, fan_in, fan_out)
        q = w2 * p + sigma_b2
        phi2 = float(mean_phi2(spec.activation, q)) if math.isfinite(q) else math.inf
        p = p + spec.alpha**2 * phi2 if spec.is_residual_layer(index) else phi2
        qs.append(q)
        ps.append(p)
        w2s.append(w2)
    return {"q": qs, "p": ps, "sigma_w2": w2s}


def profiles(spec: RunSpec, q_in: float) -> dict[str, list[float]]:
    """Predicted ‖δ(l)‖² and per-example ‖∇W(l)‖² per hidden layer, relative to the
    last hidden layer. Backwards with g(l) = ∂ℓ/∂a(l):
      plain:    δ(l) = g(l) ⊙ φ'(z(l)),   g(l-1) = W(l)ᵀ δ(l)
      residual: δ(l) = α g(l) ⊙ φ'(z(l)), g(l-1) = g(l) + W(l)ᵀ δ(l)
    so E‖g(l-1)‖² = E‖g(l)‖² (r + σ_w²(l) c² E[φ'²](q(l))) with r = 1 (residual) or 0."""
    traj = trajectory(spec, q_in)
    depth = spec.depth
    dphi2 = [float(mean_dphi2(spec.activation, q)) if math.isfinite(q) else 0.0
             for q in traj["q"]]
    g2 = [0.0] * depth
    g2[-1] = 1.0
    for index in range(depth - 1, 0, -1):
        residual = spec.is_residual_layer(index)
        c2 = spec.alpha**2 if residual else 1.0
        factor = traj["sigma_w2"][index] * c2 * dphi2[index]
        g2[index - 1] = g2[index] * ((1.0 if residual else 0.0) + factor)
    delta2 = [g * (spec.alpha**2 if spec.is_residual_layer(i) else 1.0) * dphi2[i]
              for i, g in enumerate(g2)]
    inputs_sq = [q_in * spec.in_features] + [p * spec.width for p in traj["p"][:-1]]
    grad_w2 = [d * a for d, a in zip(delta2, inputs_sq, strict=True)]
    return {"delta_norm2_profile": _relative(delta2), "grad_w_norm2_profile": _relative(grad_w2),
            "q_profile": traj["q"]}


def _relative(values: list[float]) -> list[float]:
    last = values[-1]
    return [v / last if last not in (0.0, math.inf) else math.nan for v in values]


def input_length(x: np.ndarray) -> float:
    """q of the input: mean x² per input unit."""
    return float(np.mean(np.square(x)))


def predict(spec: RunSpec, q_in: float) -> dict[str, Any]:
    """The `theory` field of a run record."""
    act = spec.activation
    hidden = spec.layer_sizes[1] if spec.depth > 1 else spec.layer_sizes[0]
    sigma_w2 = effective_sigma_w2(spec.init, spec.sigma_w, hidden[1], hidden[0])
    sigma_b2 = spec.sigma_b**2
    qs = float(q_star(act, sigma_w2, sigma_b2, q0=q_in))
    c1 = float(chi1(act, sigma_w2, qs))
    notes = []
    if spec.norm == "layernorm":
        notes.append("layernorm rescales every layer: the mean-field profile does not apply")
    if spec.width < MIN_WIDTH:
        notes.append(f"width {spec.width} < {MIN_WIDTH}: too narrow for the wide-network limit")
    if spec.optimizer == "adam" or spec.steps > 0:
        notes.append("predictions hold at initialization (step 0); training moves the weights")
    if act in ("relu", "leaky_relu") and sigma_b2 > 0:
        notes.append("relu nets have a fixed point of the length map only for σ_b² = 0")
    prof = profiles(spec, q_in)
    traj = trajectory(spec, q_in)
    orth = spec.init == "orthogonal"
    jac_mean, jac_var = jacobian_moments(act, traj["sigma_w2"][1:], traj["q"][1:], orth)
    if spec.residual:
        jac_mean, jac_var = math.nan, math.nan
        notes.append("the Jacobian spectrum prediction covers plain (non-residual) stacks")
    applies = spec.norm == "none" and spec.width >= MIN_WIDTH
    return {
        "applies": applies,
        "notes": notes,
        "sigma_w2": sigma_w2,
        "sigma_b2": sigma_b2,
        "q_in": q_in,
        "q_star": qs,
        "chi1": c1,
        "xi_grad": float(xi_grad(c1)),
        "critical_sigma_w2": critical_sigma_w2(act, sigma_b2),
        "delta_norm2_profile": prof["delta_norm2_profile"] if applies else None,
        "grad_w_norm2_profile": prof["grad_w_norm2_profile"] if applies else None,
        "q_profile": prof["q_profile"],
        "jacobian": {"mean": jac_mean, "normalized_variance": jac_var,
                     "weights": "orthogonal" if orth else "gaussian"},
    }
