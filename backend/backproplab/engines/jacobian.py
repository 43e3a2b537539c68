"""Singular values of the hidden stack's input-output Jacobian J = ∂a(L)/∂a(1)
at one example, built from the layer Jacobians the step already holds.

Layer l maps a(l-1) to a(l) with J_l = D_l N_l W_l (plus I for a residual
layer, scaled by α), where D_l = diag φ'(u_l), N_l the layernorm Jacobian (or I).
Exact SVD for small widths; for large widths the top-k singular values by
randomized subspace iteration on JᵀJ, using only products with blocks of vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.activations import derivative
from ..model.spec import RunSpec
from .tape_engine import LAYERNORM_EPS

EXACT_MAX_WIDTH = 256
ITERATIONS = 12
CHECK_COLUMNS = 128


def _layer_maps(xp: Any, spec: RunSpec, weights: list, zs: list, example: int = 0):
    """For hidden layers 2..L: functions v ↦ J_l v and u ↦ J_lᵀ u on column blocks."""
    maps = []
    for index in range(1, spec.depth):
        W = weights[index]
        z = zs[index][example]
        if spec.norm == "layernorm":
            centred = z - xp.mean(z)
            s = xp.sqrt(xp.mean(centred * centred) + LAYERNORM_EPS)
            uhat = centred / s
            u = uhat
        else:
            s, uhat, u = None, None, z
        d = derivative(spec.activation, u, xp)[:, None]
        alpha = spec.alpha if spec.is_residual_layer(index) else None

        def norm_jac(v, s=s, uhat=uhat):
            # N v = (v − mean(v) − û·mean(û ⊙ v)) / s, symmetric
            if s is None:
                return v
            mean_v = xp.mean(v, 0)[None, :]
            proj = xp.mean(uhat[:, None] * v, 0)[None, :]
            return (v - mean_v - uhat[:, None] * proj) / s

        def forward(v, W=W, d=d, alpha=alpha, norm_jac=norm_jac):
            out = d * norm_jac(W @ v)
            return out if alpha is None else v + alpha * out

        def backward(u_, W=W, d=d, alpha=alpha, norm_jac=norm_jac):
            out = W.T @ norm_jac(d * u_)
            return out if alpha is None else u_ + alpha * out

        maps.append((forward, backward))
    return maps


def singular_values(xp: Any, spec: RunSpec, weights: list, zs: list, topk: int,
                    check: Callable[[], None] | None = None) -> np.ndarray:
    """Singular values of J, largest first (all of them, or the top k). `check()` is
    called after every layer's product, so a cancelled run stops mid-spectrum."""
    check = check or (lambda: None)
    maps = _layer_maps(xp, spec, weights, zs)
    like = zs[0]
    width = spec.width

    def by_columns(f, v):
        # columns are independent: products on column chunks keep each uninterruptible
        # piece of BLAS work short, so a cancel is seen within a few milliseconds
        if v.shape[1] <= CHECK_COLUMNS:
            out = f(v)
            check()
            return out
        parts = []
        for start in range(0, v.shape[1], CHECK_COLUMNS):
            parts.append(f(v[:, start:start + CHECK_COLUMNS]))
            check()
        return xp.concat(parts, 1)

    def apply(v):
        for forward, _ in maps:
            v = by_columns(forward, v)
        return v

    def apply_t(u):
        for _, backward in reversed(maps):
            u = by_columns(backward, u)
        return u

    def svd(m, count):
        # an overflowed Jacobian has no spectrum: report NaN rather than fail
        if not bool(xp.host(xp.sum(xp.to_float(~xp.isfinite(m)))) == 0):
            return np.full(count, np.nan)
        return np.sort(xp.host(xp.svdvals(m)))[::-1]

    if width <= EXACT_MAX_WIDTH:
        return svd(apply(xp.eye(width, like)), width)
    k = min(topk, width)
    Q = xp.qr(xp.randn((width, k), like, seed=[spec.seed, 0x51]))
    for _ in range(ITERATIONS):
        M = apply_t(apply(Q))
        if not bool(xp.host(xp.sum(xp.to_float(~xp.isfinite(M)))) == 0):
            return np.full(k, np.nan)
        check()
        Q = xp.qr(M)
    return svd(apply(Q), k)
