"""The probes of the JAX engine, traced into its step: δ(l) taken out of the
backward pass, the record's statistics on the device, and the packing of a
recorded step into one vector (read back in one transfer) in the probes' layout.

δ(l) = ∂loss/∂z(l): z(l) passes through `tap`, the identity, whose VJP rule hands
δ(l) on unchanged and also returns it as the "gradient" of a zero slot. What is
reduced and how is chosen by the cost of XLA's CPU runtime, where every operation
left after fusion costs ~1–2 µs to launch, about a small layer's matmul: each
statistic is one batched operation over all layers at once (δ stacked from the
scan's slots, the layers' norms in one conditional, moments of z and a and both
histograms over one padded stack), not one operation per layer. Only where the
stacked δ would outgrow the cache (STACK_MAX_VALUES) is each δ(l) reduced inside the
backward pass instead, while in cache, and never stored.
The statistics are those of the host and device reductions (probes.stats,
model.norms), written for jax.numpy (jax_xp).
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


def layer_norms(*groups) -> list:
    """Per-layer norms of several groups (first (…), hidden stacked (L-1, …), out),
    input side first, (L+1,) each: √Σx² where every sum of squares of every group is
    inside xp's window, else (one lax.cond for all: one operation, not one per
    group) the scaled second pass for the layers outside it."""
    def sums(first, hidden, out):
        axes = tuple(range(1, hidden.ndim))
        return jnp.concatenate([jnp.sum(jnp.square(first))[None],
                                jnp.sum(jnp.square(hidden), axis=axes),
                                jnp.sum(jnp.square(out))[None]])

    squares = jnp.stack([sums(*g) for g in groups])
    lo, hi = norm_window(np.dtype(squares.dtype))
    inside = (squares > lo) & (squares < hi)

    def rescaled():
        scaled = jnp.stack([jnp.concatenate([scaled_norm(first)[None],
                                             scaled_norm(hidden, tuple(range(1, hidden.ndim))),
                                             scaled_norm(out)[None]])
                            for first, hidden, out in groups])
        return jnp.where(inside, jnp.sqrt(squares), scaled)

    result = jax.lax.cond(jnp.all(inside), lambda: jnp.sqrt(squares), rescaled)
    return [result[i] for i in range(len(groups))]


# --- δ out of the backward pass -----------------------------------------------------------

STACK_MAX_VALUES = 1 << 18  # δ values of a part stacked (1 MB in float32: in L2), else reduced


def stacks_delta(spec: RunSpec, size: int) -> bool:
    """Whether a part of `size` examples takes δ stacked out of the backward pass
    (reduced after it, a few operations for all layers) or reduced inside it per
    layer (nothing stored: large layers, where a launch is cheap against the work)."""
    return (spec.depth + 1) * size * max(spec.width, spec.out_features) <= STACK_MAX_VALUES


def reduce_delta(g, keep: int):
    """δ (…, examples, units) packed along the last axis: [rows 0..keep-1 | unit
    alive (δ ≠ 0 for some example; NaN counts) | max|δ| | Σ (δ / max|δ|)²]."""
    largest = jnp.max(jnp.abs(g), axis=(-2, -1))
    alive = jnp.any(g != 0, axis=-2).astype(g.dtype)
    squares = jnp.sum(jnp.square(g / _safe(largest)[..., None, None]), axis=(-2, -1))
    rows = g[..., :keep, :].reshape(g.shape[:-2] + (-1,))
    return jnp.concatenate([rows, alive, largest[..., None], squares[..., None]], -1)


def delta_slots(spec: RunSpec, size: int, keep: int, dtype) -> dict:
    """Zero slots {"first", "hidden" (L-1, …), "out"} for a part of `size` examples:
    z-shaped where δ is stacked, else the size of reduce_delta's vector."""
    stacked = stacks_delta(spec, size)

    def slot(units, *lead):
        return jnp.zeros((*lead, size, units) if stacked else (*lead, keep * units + units + 2),
                         dtype)
    return {"first": slot(spec.width), "hidden": slot(spec.width, spec.depth - 1),
            "out": slot(spec.out_features)}


def tap(z, slot, keep: int):
    """The identity on z; its VJP returns as the slot's cotangent δ itself (a slot
    shaped like z) or δ's reductions with `keep` rows (a vector slot: reduce_delta)."""
    return _tap(z, slot, None if slot.shape == z.shape else keep)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _tap(z, slot, keep: int | None):
    return z


def _tap_fwd(z, slot, keep):
    return z, None


def _tap_bwd(keep, _, g):
    return g, (g if keep is None else reduce_delta(g, keep))


_tap.defvjp(_tap_fwd, _tap_bwd)


def _delta_reductions(spec: RunSpec, red: dict, keep: int):
    """(rows (L, keep, W), out rows (keep, out), max|δ| (L+1), Σ(δ/max)² (L+1), unit
    alive (L+1, U), U = max(W, out)) of one part's slot cotangents."""
    width, out_dim = spec.width, spec.out_features
    if red["first"].ndim == 2:  # stacked δ: (…, size, units)
        units = max(width, out_dim)

        D = jnp.concatenate([_padded(red["first"], units)[None], _padded(red["hidden"], units),
                             _padded(red["out"], units)[None]])  # zero padding: never alive
        largest = jnp.max(jnp.abs(D), axis=(1, 2))
        alive = jnp.any(D != 0, axis=1)
        rescaled = jnp.sum(jnp.square(D / _safe(largest)[:, None, None]), axis=(1, 2))
        rows = D[:, :keep]
        return rows[:-1, :, :width], rows[-1, :, :out_dim], largest, rescaled, alive
    first, hidden, out = (_unpack_slot(red[k], keep, units_) for k, units_ in
                          (("first", width), ("hidden", width), ("out", out_dim)))
    rows = jnp.concatenate([first[0][None], hidden[0]])
    largest = jnp.concatenate([first[2][None], hidden[2], out[2][None]])
    rescaled = jnp.concatenate([first[3][None], hidden[3], out[3][None]])
    units = max(width, out_dim)
    alive = jnp.concatenate([_padded(first[1], units, False)[None],
                             _padded(hidden[1], units, False), _padded(out[1], units, False)[None]])
    return rows, out[0], largest, rescaled, alive


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


def _padded(x, units: int, value=0.0):
    """x with its last axis padded to `units` entries of `value`."""
    extra = units - x.shape[-1]
    return x if not extra else jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, extra)],
                                       constant_values=value)


def _moments(Z, A, z_out):
    """Mean and standard deviation of each hidden layer's z, then a (L, n, W) each, and
    of the output z (n, out), as probes.host's (two passes: mean, then centred
    squares), over one zero-padded stack (2L+1, n, U): two reductions for all."""
    units = max(Z.shape[-1], z_out.shape[-1])
    X = jnp.concatenate([_padded(Z, units), _padded(A, units), _padded(z_out, units)[None]])
    widths = np.array([Z.shape[-1]] * (2 * Z.shape[0]) + [z_out.shape[-1]])
    count = jnp.asarray(widths * Z.shape[1], X.dtype)
    mean = jnp.sum(X, axis=(1, 2)) / count
    centred = X - mean[:, None, None]
    if units != Z.shape[-1] or units != z_out.shape[-1]:  # padding is no data
        centred = jnp.where(np.arange(units) < widths[:, None, None], centred, 0.0)
    return mean, jnp.sqrt(jnp.sum(centred * centred, axis=(1, 2)) / count)


def _histograms(values: list, bins: int):
    """probes.histograms over rows of different lengths at once, each padded with
    NaN (outside every bin) to the longest; also the padded rows.

    The same counts as probes.histograms, in fewer operations per value: with t =
    (x − lo)·scale, a value is in a bin iff t is finite (x finite, and no ∞·0 where
    hi − lo overflows), and for t ≥ 0 the conversion to an integer is the floor, so
    clip(t, 0, bins − 1) needs no floor of its own. Fewer operations per value than
    bytes keep XLA from cutting the loop into tasks for its thread pool (its cost
    model's rule for a compute-bound loop), which on a busy CPU costs more than the
    loop itself."""
    longest = max(v.shape[1] for v in values)
    rows = jnp.concatenate([_padded(v, longest, jnp.nan) for v in values], 0)
    layers = rows.shape[0]
    valid = jnp.isfinite(rows)
    lo = jnp.min(jnp.where(valid, rows, math.inf), axis=1)
    hi = jnp.max(jnp.where(valid, rows, -math.inf), axis=1)
    some = hi >= lo  # False for a row without a finite value (lo = inf, hi = -inf)
    lo, hi = jnp.where(some, lo, 0.0), jnp.where(some, hi, 0.0)
    scale = bins / jnp.maximum(hi - lo, 1e-12)  # 0 when hi - lo overflows
    t = (rows - lo[:, None]) * scale[:, None]
    # not in a bin: to an overflow bin per row, cut off below
    position = jnp.where(jnp.isfinite(t), jnp.clip(t, 0, bins - 1), float(bins))
    index = position.astype(jnp.int32) + (np.arange(layers, dtype=np.int32) * (bins + 1))[:, None]
    counts = jnp.bincount(index.reshape(-1), length=layers * (bins + 1))
    return lo, hi, counts.reshape(layers, bins + 1)[:, :bins], rows


def summary_block(spec: RunSpec, parts: list, n_sub: int, units, norms: dict):
    """A step's statistics, the fields of block_layout in order, each (L+1, columns)
    flattened (summary_of reads them back). parts: per microbatch
    (size, keep, (Z rows, A rows), z_out rows, slot cotangents); norms: grad_w, grad_b,
    weight, update per layer."""
    depth, width, out_dim, batch = spec.depth, spec.width, spec.out_features, spec.batch_size
    delta_rows, out_rows, squares, alive = [], [], 0.0, None
    for size, keep, _, _, red in parts:
        rows, rows_out, largest, rescaled, live = _delta_reductions(spec, red, keep)
        # per-example δ: the part's mean-loss cotangent times the part's size
        delta_rows.append(size * rows)
        out_rows.append(size * rows_out)
        squares = squares + jnp.square(size * _from_parts(largest, rescaled))
        alive = live if alive is None else alive | live
    dtype = largest.dtype
    counts = jnp.sum(alive, 1).astype(dtype)

    def first_rows(blocks, axis):
        joined = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks, axis)
        return joined[:, :n_sub] if axis == 1 else joined[:n_sub]

    Z, A = (first_rows([p[2][i] for p in parts], 1) for i in range(2))
    z_out = first_rows([p[3] for p in parts], 0)
    D, d_out = first_rows(delta_rows, 1), first_rows(out_rows, 0)
    n = Z.shape[1]
    mean, std = _moments(Z, A, z_out)
    layers = depth + 1
    u = NORMS[spec.norm].forward(Z, JAX)[0] if spec.activation != "linear" else Z
    values = {"z_mean": jnp.concatenate([mean[:depth], mean[-1:]]),
              "z_std": jnp.concatenate([std[:depth], std[-1:]]),
              "a_mean": mean[depth:], "a_std": std[depth:],  # the output's a is its z
              "saturated_frac": jnp.concatenate([saturated_fraction(JAX, spec.activation, u),
                                                 0.0 * mean[-1:]])}  # linear: never
    values["dead_frac"] = 1.0 - counts / jnp.array([width] * depth + [out_dim], dtype)
    values["delta_norm"] = jnp.sqrt(squares / batch)  # RMS of per-example ‖δ(l)‖
    values.update(grad_w_norm=norms["grad_w"], grad_b_norm=norms["grad_b"],
                  weight_norm=norms["weight"], update_ratio=norms["update"] / norms["weight"])
    logs = [jnp.log10(jnp.abs(D.reshape(depth, -1))),
            jnp.log10(jnp.abs(d_out.reshape(1, -1)))]  # zeros: -inf, out of the bins
    lo, hi, hist, rows = _histograms([A.reshape(depth, -1), z_out.reshape(1, -1)] + logs,
                                     spec.record.hist_bins)
    d_zero = jnp.sum(rows[layers:] == -math.inf, 1)
    sizes = jnp.array([n * width] * depth + [n * out_dim])
    values.update(a_counts=hist[:layers], a_lo=lo[:layers], a_hi=hi[:layers],
                  d_counts=hist[layers:], d_lo=lo[layers:], d_hi=hi[layers:], d_zero=d_zero,
                  # NaN and ±Inf among the δ: what neither a bin nor the zeros hold
                  d_nonfinite=sizes - jnp.sum(hist[layers:], 1) - d_zero)
    samples = D[:, 0, :][:, units]  # δ of example 0 at the sampled units
    k = samples.shape[1]
    out_sample = jnp.pad(d_out[0, :min(k, out_dim)], (0, k - min(k, out_dim)))
    values["delta_sample"] = jnp.concatenate([samples, out_sample[None]])
    # field by field, each (L+1, columns) row-major: pack's one concatenation takes
    # them as they are (no stacking into columns, no transposes: fewer operations)
    layout = block_layout(spec.record.hist_bins, k)
    return [values[name].astype(dtype).reshape(-1) for name, _ in layout.groups]


@functools.lru_cache(maxsize=64)
def _fields(rows: int, bins: int, samples: int) -> tuple[tuple, int]:
    """((name, start, stop, shape or None for a vector), ...) of the packed block, and
    its length: worked out once per layout, not at every recorded step."""
    plan, at = [], 0
    for name, columns in block_layout(bins, samples).groups:
        vector = columns == 1 and name != "delta_sample"
        plan.append((name, at, at + rows * columns, None if vector else (rows, columns)))
        at += rows * columns
    return tuple(plan), at


def summary_of(spec: RunSpec, fields: np.ndarray) -> probes.Summary:
    """The host-side Summary of the packed fields (samples trimmed to each group)."""
    k = min(spec.record.delta_samples, spec.width)
    plan, _ = _fields(spec.depth + 1, spec.record.hist_bins, k)
    values = {name: fields[start:stop] if shape is None else fields[start:stop].reshape(shape)
              for name, start, stop, shape in plan}
    samples = values.pop("delta_sample")
    out_k = min(k, spec.out_features)
    return probes.Summary(**values, delta_sample=samples[:-1].tolist() +
                          [samples[-1, :out_k].tolist()])


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


def pack(block: list, loss, output, sv: Any | None):
    """The one vector a recorded step reads back: the statistics' fields, loss,
    output, spectrum: one concatenation. (XLA leaves each field's last operation
    apart from it, ~25 operations; concatenating a few fields at a time, which XLA
    fuses with those operations, launched 26 fewer but measured slower.)"""
    dtype = block[0].dtype
    pieces = [*block, loss.reshape(1), output.reshape(-1)]
    if sv is not None:
        pieces.append(sv)
    return jnp.concatenate([p.astype(dtype) for p in pieces])


def unpack(spec: RunSpec, packed: np.ndarray, with_spectrum: bool) -> tuple:
    """(Summary, loss, output, spectrum or None) from the vector `pack` made."""
    k = min(spec.record.delta_samples, spec.width)
    at = _fields(spec.depth + 1, spec.record.hist_bins, k)[1]
    loss = float(packed[at])
    out_size = spec.batch_size * spec.out_features
    output = packed[at + 1:at + 1 + out_size].reshape(spec.batch_size, spec.out_features)
    sv = packed[at + 1 + out_size:] if with_spectrum else None
    return summary_of(spec, packed[:at]), loss, output, sv
