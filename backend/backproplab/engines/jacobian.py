"""Singular values of the hidden stack's input-output Jacobian J = ∂a(L)/∂a(1)
at one example, built from the layer Jacobians the step already holds.

Layer l maps a(l-1) to a(l) with J_l = D_l N_l W_l (plus I for a residual
layer, scaled by α), where D_l = diag φ'(u_l), N_l the norm's Jacobian (or I):
network.layer_jvp and layer_vjp, applied to blocks of row vectors (so a block
holds (J Q)ᵀ). Exact SVD for small widths; for large widths the top-k singular
values by randomized subspace iteration on JᵀJ, using only products with blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..model import network
from ..model.spec import RunSpec

EXACT_MAX_WIDTH = 256
ITERATIONS = 12
CHECK_ROWS = 128


def _layer_maps(xp: Any, spec: RunSpec, weights: list, zs: list, example: int = 0):
    """For hidden layers 2..L: t ↦ t J_lᵀ and g ↦ g J_l on blocks of rows."""
    kernels = network.Kernels(xp=xp, dense=None)
    maps = []
    for layer in network.layers(spec)[1:spec.depth]:
        W, z = weights[layer.index], zs[layer.index][example]
        u, inv = layer.norm.forward(z, xp)
        values = network.LayerValues(None, z, u, inv, None, None)
        maps.append((lambda t, layer=layer, v=values, W=W:
                     network.layer_jvp(layer, kernels, t, v, W),
                     lambda g, layer=layer, v=values, W=W:
                     network.layer_vjp(layer, kernels, g, v, W)))
    return maps


def _nonfinite(xp: Any, m: Any) -> bool:
    return not bool(xp.host(xp.sum(xp.to_float(~xp.isfinite(m)))) == 0)


def singular_values(xp: Any, spec: RunSpec, weights: list, zs: list, topk: int,
                    check: Callable[[], None] | None = None) -> np.ndarray:
    """Singular values of J, largest first (all of them, or the top k). `check()` is
    called after every product on a chunk of rows, so a cancelled run stops
    mid-spectrum."""
    check = check or (lambda: None)
    maps = _layer_maps(xp, spec, weights, zs)
    like = zs[0]
    width = spec.width

    def by_rows(f, rows):
        # the block's rows are independent: products on chunks of rows keep each
        # uninterruptible piece of BLAS work short, so a cancel is seen within ms
        if rows.shape[0] <= CHECK_ROWS:
            out = f(rows)
            check()
            return out
        parts = []
        for start in range(0, rows.shape[0], CHECK_ROWS):
            parts.append(f(rows[start:start + CHECK_ROWS]))
            check()
        return xp.concat(parts, 0)

    def apply(rows):  # Qᵀ ↦ (J Q)ᵀ
        for forward, _ in maps:
            rows = by_rows(forward, rows)
        return rows

    def apply_t(rows):  # Pᵀ ↦ (Jᵀ P)ᵀ
        for _, backward in reversed(maps):
            rows = by_rows(backward, rows)
        return rows

    def svd(m, count):
        # an overflowed Jacobian has no spectrum: report NaN rather than fail
        if _nonfinite(xp, m):
            return np.full(count, np.nan)
        return np.sort(xp.host(xp.svdvals(m)))[::-1]

    if width <= EXACT_MAX_WIDTH:
        return svd(apply(xp.eye(width, like)), width)
    k = min(topk, width)
    Q = xp.qr(xp.randn((width, k), like, seed=[spec.seed, 0x51]))
    for _ in range(ITERATIONS):
        M = apply_t(apply(Q.T)).T
        if _nonfinite(xp, M):
            return np.full(k, np.nan)
        check()
        Q = xp.qr(M)
    return svd(apply(Q.T), k)
