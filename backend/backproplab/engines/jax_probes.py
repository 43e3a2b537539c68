"""The probes of the JAX engine, traced into its step: δ(l)'s reductions inside the
backward pass, the record's statistics on the device, and the packing of a
recorded step into one vector (read back in one transfer) in the probes' layout.

δ(l) = ∂loss/∂z(l): z(l) passes through `tap`, the identity, whose VJP rule hands
δ(l) on unchanged and returns, as the "gradient" of a zero slot, δ(l)'s
reductions (first rows, live units, max|δ|, Σ(δ/max)²). XLA fuses them into the
backward pass; δ(l) is never stored. The statistics are those of the host and
device reductions (probes.stats, model.norms), written for jax.numpy (jax_xp).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..model import network
from ..model.norms import NORMS
from ..model.spec import RunSpec
from ..xp import norm_window
from . import probes
from .jacobian import EXACT_MAX_WIDTH, ITERATIONS
from .jax_xp import JAX
from .probes.stats import saturated_fraction

# --- norms -------------------------------------------------------------------------------


def norm(x, axes=None):
    """‖x‖ over `axes` (all by default) in one pass, √Σx², when every sum of squares
    is inside the window where no square can have under- or overflowed (xp's rule);
    else, and only then (lax.cond), the scaled second pass."""
    squares = jnp.sum(jnp.square(x), axis=axes)
    lo, hi = norm_window(np.dtype(x.dtype))
    inside = jnp.all((squares > lo) & (squares < hi))
    return jax.lax.cond(inside, lambda: jnp.sqrt(squares), lambda: scaled_norm(x, axes))


def scaled_norm(x, axes=None):
    """‖x‖ = m·‖x/m‖ with m = max|x|; 0, NaN and ±Inf pass through as m."""
    largest = jnp.max(jnp.abs(x), axis=axes)
    safe = _safe(largest)
    if axes is not None:
        safe = safe.reshape(safe.shape + (1,) * (x.ndim - safe.ndim))
    return _from_parts(largest, jnp.sum(jnp.square(x / safe), axis=axes))


def _safe(largest):
    return jnp.where(jnp.isfinite(largest) & (largest > 0), largest, 1.0)


def _from_parts(largest, rescaled_squares):
    ok = jnp.isfinite(largest) & (largest > 0)
    return jnp.where(ok, _safe(largest) * jnp.sqrt(rescaled_squares), largest)


def layer_norms(first, hidden, out):
    """Per-layer norms, input side first: first (…), hidden stacked (L-1, …), out."""
    axes = tuple(range(1, hidden.ndim))
    return jnp.concatenate([norm(first)[None], norm(hidden, axes), norm(out)[None]])


# --- δ inside the backward pass ----------------------------------------------------------


def reduce_delta(g, keep: int):
    """δ (examples, units) packed: [rows 0..keep-1 | unit alive (δ ≠ 0 for some example;
    NaN counts) | max|δ| | Σ (δ / max|δ|)²]."""
    largest = jnp.max(jnp.abs(g))
    alive = jnp.any(g != 0, axis=0).astype(g.dtype)
    squares = jnp.sum(jnp.square(g / _safe(largest)))
    return jnp.concatenate([g[:keep].reshape(-1), alive, largest[None], squares[None]])


def slot_size(keep: int, units: int) -> int:
    return keep * units + units + 2


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def tap(z, slot, keep: int):
    """The identity on z; its VJP returns δ's reductions as the slot's cotangent.
    (Reducing the stacked δ of all layers after the backward pass instead measured
    the same on the CPU, and stores a batch × width array per layer.)"""
    return z


def _tap_fwd(z, slot, keep):
    return z, None


def _tap_bwd(keep, _, g):
    return g, reduce_delta(g, keep)


tap.defvjp(_tap_fwd, _tap_bwd)


def _unpack_slot(reduction, keep: int, units: int):
    rows, rest = reduction[..., :keep * units], reduction[..., keep * units:]
    return (rows.reshape(rows.shape[:-1] + (keep, units)), rest[..., :units] > 0,
            rest[..., units], rest[..., units + 1])


# --- a recorded step's statistics, packed -------------------------------------------------


def block_layout(bins: int, samples: int) -> probes.Layout:
    """Per-layer columns of the packed block: every field of probes.Summary, δ samples
    padded to the longest group."""
    one = tuple((key, 1) for key in probes.SCALAR_KEYS)
    return probes.Layout(one + (("a_counts", bins), ("a_lo", 1), ("a_hi", 1),
                                ("d_counts", bins), ("d_lo", 1), ("d_hi", 1), ("d_zero", 1),
                                ("d_nonfinite", 1), ("delta_sample", samples)))


def _group_stats(norm_name: str, activation: str, Z, A) -> dict:
    """Moments and the saturated fraction of a group (L, n, W), as probes.host's."""
    out = {}
    for name, x in (("z", Z), ("a", A)):
        mean = jnp.mean(x, axis=(1, 2))
        centred = x - mean[:, None, None]
        out[f"{name}_mean"] = mean
        out[f"{name}_std"] = jnp.sqrt(jnp.mean(centred * centred, axis=(1, 2)))
    u = NORMS[norm_name].forward(Z, JAX)[0] if activation != "linear" else Z
    out["saturated_frac"] = saturated_fraction(JAX, activation, u)
    return out


def _histograms(values: list, bins: int):
    """probes.histograms over layers of different sizes at once, each padded with NaN
    (outside every bin) to the longest."""
    longest = max(v.shape[1] for v in values)
    padded = [jnp.pad(v, ((0, 0), (0, longest - v.shape[1])), constant_values=jnp.nan)
              for v in values]
    return probes.histograms(JAX, jnp.concatenate(padded, 0), bins)


def summary_block(spec: RunSpec, parts: list, n_sub: int, units, norms: dict):
    """The (L+1, block_layout.width) block of a step's statistics. parts: per microbatch
    (size, keep, (Z rows, A rows), z_out rows, slot reductions); norms: grad_w, grad_b,
    weight, update per layer."""
    depth, width, out_dim, batch = spec.depth, spec.width, spec.out_features, spec.batch_size
    delta_rows, out_rows, squares, alive, alive_out = [], [], 0.0, None, None
    for size, keep, _, _, red in parts:
        first, hidden, out = (_unpack_slot(red[k], keep, units_) for k, units_ in
                              (("first", width), ("hidden", width), ("out", out_dim)))
        # per-example δ: the part's mean-loss cotangent times the part's size
        delta_rows.append(size * jnp.concatenate([first[0][None], hidden[0]]))
        out_rows.append(size * out[0])
        largest = jnp.concatenate([first[2][None], hidden[2], out[2][None]])
        rescaled = jnp.concatenate([first[3][None], hidden[3], out[3][None]])
        squares = squares + jnp.square(size * _from_parts(largest, rescaled))
        live = jnp.concatenate([first[1][None], hidden[1]])
        alive = live if alive is None else alive | live
        alive_out = out[1] if alive_out is None else alive_out | out[1]
    dtype = largest.dtype
    counts = jnp.concatenate([jnp.sum(alive, 1), jnp.sum(alive_out)[None]]).astype(dtype)

    def first_rows(blocks, axis):
        joined = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis)
        return joined[:, :n_sub] if axis == 1 else joined[:n_sub]

    Z, A = (first_rows([p[2][i] for p in parts], 1) for i in range(2))
    z_out = first_rows([p[3] for p in parts], 0)
    D, d_out = first_rows(delta_rows, 1), first_rows(out_rows, 0)
    n = Z.shape[1]
    hidden = _group_stats(spec.norm, spec.activation, Z, A)
    output = _group_stats(spec.norm, "linear", z_out[None], z_out[None])
    values = {key: jnp.concatenate([hidden[key], output[key]]) for key in hidden}
    values["dead_frac"] = 1.0 - counts / jnp.array([width] * depth + [out_dim], dtype)
    values["delta_norm"] = jnp.sqrt(squares / batch)  # RMS of per-example ‖δ(l)‖
    values.update(grad_w_norm=norms["grad_w"], grad_b_norm=norms["grad_b"],
                  weight_norm=norms["weight"], update_ratio=norms["update"] / norms["weight"])
    a_values = [A.reshape(depth, -1), z_out.reshape(1, -1)]
    d_values = [jnp.log10(jnp.abs(D.reshape(depth, -1))),
                jnp.log10(jnp.abs(d_out.reshape(1, -1)))]  # zeros: -inf, out of the bins
    lo, hi, hist = _histograms(a_values + d_values, spec.record.hist_bins)
    layers = depth + 1
    d_zero = jnp.concatenate([jnp.sum(v == -math.inf, 1) for v in d_values])
    sizes = jnp.array([n * width] * depth + [n * out_dim])
    values.update(a_counts=hist[:layers], a_lo=lo[:layers], a_hi=hi[:layers],
                  d_counts=hist[layers:], d_lo=lo[layers:], d_hi=hi[layers:], d_zero=d_zero,
                  # NaN and ±Inf among the δ: what neither a bin nor the zeros hold
                  d_nonfinite=sizes - jnp.sum(hist[layers:], 1) - d_zero)
    samples = D[:, 0, :][:, units]  # δ of example 0 at the sampled units
    k = samples.shape[1]
    out_sample = jnp.pad(d_out[0, :min(k, out_dim)], (0, k - min(k, out_dim)))
    values["delta_sample"] = jnp.concatenate([samples, out_sample[None]])
    values = {key: v.astype(dtype) for key, v in values.items()}
    return block_layout(spec.record.hist_bins, k).pack(JAX, values)


def summary_of(spec: RunSpec, block: np.ndarray) -> probes.Summary:
    """The host-side Summary of a packed block (samples trimmed to each group)."""
    k = min(spec.record.delta_samples, spec.width)
    values = block_layout(spec.record.hist_bins, k).unpack(block)
    rows = values.pop("delta_sample").reshape(block.shape[0], -1)
    out_k = min(k, spec.out_features)
    samples = rows[:-1].tolist() + [rows[-1, :out_k].tolist()]
    return probes.Summary(**values, delta_sample=samples)


# --- the Jacobian spectrum ----------------------------------------------------------------


def spectrum(spec: RunSpec, hidden_weights, z0, q0):
    """jacobian.singular_values traced, network.layer_jvp/vjp scanned over the hidden
    stack (blocks of row vectors, as there): exact for small widths, else randomized
    subspace iteration from q0; NaN when the Jacobian is not finite.
    z0: z(l) of example 0, (L, W)."""
    layer = network.layers(spec)[1] if spec.depth > 1 else None  # layers 2..L are alike
    kernels = network.Kernels(xp=JAX, dense=None)

    def values(z):
        u, inv = layer.norm.forward(z, JAX)
        return network.LayerValues(None, z, u, inv, None, None)

    def forward(t, xs):
        W, z = xs
        return network.layer_jvp(layer, kernels, t, values(z), W), None

    def backward(g, xs):
        W, z = xs
        return network.layer_vjp(layer, kernels, g, values(z), W), None

    def apply(rows):  # Qᵀ ↦ (J Q)ᵀ
        return rows if layer is None else jax.lax.scan(forward, rows, (hidden_weights,
                                                                        z0[1:]))[0]

    def apply_t(rows):  # Pᵀ ↦ (Jᵀ P)ᵀ
        return rows if layer is None else jax.lax.scan(backward, rows, (hidden_weights,
                                                                         z0[1:]),
                                                        reverse=True)[0]

    def svd(m, finite):
        finite = finite & jnp.all(jnp.isfinite(m))
        values_ = jnp.linalg.svd(jnp.where(finite, m, 0.0), compute_uv=False)
        return jnp.where(finite, values_, jnp.nan)

    if spec.width <= EXACT_MAX_WIDTH:
        return svd(apply(jnp.eye(spec.width, dtype=z0.dtype)), jnp.bool_(True))
    Q, finite = q0, jnp.bool_(True)
    for _ in range(ITERATIONS):
        M = apply_t(apply(Q.T)).T
        finite = finite & jnp.all(jnp.isfinite(M))
        Q = jnp.linalg.qr(jnp.where(finite, M, 0.0))[0]
    return svd(apply(Q.T), finite)


def spectrum_size(spec: RunSpec) -> int:
    return spec.width if spec.width <= EXACT_MAX_WIDTH else min(spec.record.jacobian_topk,
                                                                 spec.width)


def pack(block, loss, output, sv: Any | None):
    """The one vector a recorded step reads back: block, loss, output, spectrum."""
    pieces = [block.reshape(-1), loss.reshape(1), output.reshape(-1)]
    if sv is not None:
        pieces.append(sv)
    return jnp.concatenate([p.astype(block.dtype) for p in pieces])


def unpack(spec: RunSpec, packed: np.ndarray, with_spectrum: bool) -> tuple:
    """(Summary, loss, output, spectrum or None) from the vector `pack` made."""
    k = min(spec.record.delta_samples, spec.width)
    width = block_layout(spec.record.hist_bins, k).width
    rows = spec.depth + 1
    at = rows * width
    block = packed[:at].reshape(rows, width)
    loss = float(packed[at])
    out_size = spec.batch_size * spec.out_features
    output = packed[at + 1:at + 1 + out_size].reshape(spec.batch_size, spec.out_features)
    sv = packed[at + 1 + out_size:] if with_spectrum else None
    return summary_of(spec, block), loss, output, sv
