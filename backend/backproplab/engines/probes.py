"""Per-layer probes, computed where the tensors live (GPU or host) and reduced
to small summaries before they leave: batched reductions over all hidden layers
at once, no host sync per layer, and a handful of small transfers per recorded
step (the scalar table, the histograms, the δ samples).

A record's size depends on depth and bins, never on width or batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model.activations import MAX_DERIVATIVE, derivative

# moments, saturation, histograms and δ samples use the first examples of the batch
# (drawn at random, so an unbiased subsample): enough for ~SUBSAMPLE_VALUES values per
# layer, between 8 and 32 examples, so their cost does not grow with width or batch
SUBSAMPLE_VALUES = 4096
HIST_EXAMPLES = 32


def subsample_size(batch: int, width: int) -> int:
    return min(batch, max(8, min(HIST_EXAMPLES, -(-SUBSAMPLE_VALUES // max(width, 1)))))
SATURATION = 0.05  # φ'(z) below 5% of its maximum counts as saturated

SCALAR_KEYS = ("z_mean", "z_std", "a_mean", "a_std", "saturated_frac", "dead_frac",
               "delta_norm", "grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio")


@dataclass
class StepTensors:
    """What one training step leaves behind, per layer (hidden layers, then output).

    deltas are per-example δ(l) = ∂ℓ_n/∂z(l) for the example's own loss ℓ_n; norms
    holds per-layer vectors grad_w, grad_b, weight (before the update) and update.
    """

    zs: list
    acts: list
    deltas: list
    norms: dict
    delta_scale: float = 1.0  # δ(l) = delta_scale · deltas[l]


def _moments(xp, x):
    # over examples and units: (L, N, W) -> (L,)
    mean = xp.mean(xp.mean(x, 2), 1)
    centred = x - mean[:, None, None]
    return mean, xp.sqrt(xp.mean(xp.mean(centred * centred, 2), 1))


def _histograms(xp, values, valid, bins):
    """Per-layer histograms of values (L, M) over entries where `valid`.

    Returns lo (L,), hi (L,), counts (L, bins). Bin edges are uniform on [lo, hi].
    """
    big = 3.0e38
    lo = xp.amin(xp.where(valid, values, big), 1)
    hi = xp.amax(xp.where(valid, values, -big), 1)
    empty = lo > hi
    lo = xp.where(empty, 0.0 * lo, lo)
    hi = xp.where(empty, 0.0 * hi, hi)
    span = xp.maximum(hi - lo, 1e-12)
    pos = xp.floor((values - lo[:, None]) / span[:, None] * bins)
    # invalid entries (and any position that is not finite) go to the overflow bin
    idx = xp.clamp(xp.where(valid & xp.isfinite(pos), pos, float(bins)), 0, bins)
    layers = values.shape[0]
    flat = xp.to_int(idx) + xp.arange(layers, values)[:, None] * (bins + 1)
    counts = xp.bincount(flat, layers * (bins + 1))
    counts = counts.reshape(layers, bins + 1)[:, :bins]
    return lo, hi, counts


def _group_stats(xp, activation, Z, A, D, bins, sample_units, delta_norm, dead):
    """Statistics for a group of equally shaped layers, from the subsample stacked
    as (L, n, W); delta_norm and dead come from the full batch."""
    z_mean, z_std = _moments(xp, Z)
    a_mean, a_std = _moments(xp, A)
    d = derivative(activation, Z, xp)
    saturated = xp.mean(xp.mean(xp.to_float(d < SATURATION * MAX_DERIVATIVE[activation]), 2), 1)
    layers = Z.shape[0]
    a_vals = xp.to_single(A.reshape(layers, -1))
    a_lo, a_hi, a_counts = _histograms(xp, a_vals, xp.isfinite(a_vals), bins)
    d_abs = xp.abs(xp.to_single(D.reshape(layers, -1)))
    d_valid = xp.isfinite(d_abs) & (d_abs > 0)
    d_log = xp.log10(xp.where(d_valid, d_abs, 1.0))
    d_lo, d_hi, d_counts = _histograms(xp, d_log, d_valid, bins)
    d_zero = xp.sum(xp.to_float(d_abs == 0), 1)
    d_nonfinite = xp.sum(xp.to_float(~xp.isfinite(d_abs)), 1)
    sample = D[:, 0, :][:, sample_units[: D.shape[2]]] if D.shape[1] else D[:, 0, :0]
    scalars = xp.stack([xp.to_float(v) for v in (z_mean, z_std, a_mean, a_std, saturated,
                                                   dead, delta_norm)], 1)
    hist = xp.concat([xp.to_float(a_counts), xp.to_float(d_counts),
                      xp.stack([xp.to_float(v) for v in (a_lo, a_hi, d_lo, d_hi, d_zero,
                                                         d_nonfinite)], 1)], 1)
    return scalars, hist, xp.to_float(sample)


def compute(xp: Any, t: StepTensors, activation: str, bins: int, delta_samples: int,
            seed: int) -> dict[str, np.ndarray]:
    """Per-layer statistics as host arrays, keyed as in the record's layers.

    Exact over the whole batch: ‖δ(l)‖ (RMS of per-example norms), dead units (no
    error signal through the unit for any example: for ReLU exactly φ'(z) = 0 on the
    whole batch), gradient and weight norms. Over a fixed subsample of the first
    `subsample_size` examples: moments, saturation, histograms and δ samples, so that
    probing costs a few passes over the data whatever the width and batch."""
    width = t.zs[0].shape[1]
    units = np.random.default_rng([seed, 0x5A4D]).permutation(width)[:delta_samples]
    hidden = len(t.zs) - 1
    batch = t.zs[0].shape[0]
    n_sub = subsample_size(batch, width)
    delta_sq, alive = xp.delta_stats(t.deltas)  # per layer: Σ‖δ_n‖², units with δ ≠ 0
    delta_norm_all = xp.sqrt(delta_sq / batch) * t.delta_scale
    groups = [(activation, slice(0, hidden)), ("linear", slice(hidden, hidden + 1))]
    scalars, hists, samples = [], [], []
    for act, sl in groups:
        Z, A, D = (xp.stack([x[:n_sub] for x in seq[sl]]) for seq in (t.zs, t.acts, t.deltas))
        if t.delta_scale != 1.0:
            D = D * t.delta_scale
        dead = 1.0 - alive[sl] / Z.shape[2]
        out_units = np.arange(min(delta_samples, Z.shape[2])) if act == "linear" else units
        s, h, smp = _group_stats(xp, act, Z, A, D, bins, xp.index(out_units, Z),
                                 delta_norm_all[sl], dead)
        scalars.append(s)
        hists.append(h)
        samples.append(smp)
    n = t.norms
    norms = xp.stack([n["grad_w"], n["grad_b"], n["weight"], n["update"] / n["weight"]], 1)
    table = xp.host(xp.concat([xp.concat(scalars, 0), norms], 1))
    hist = xp.host(xp.concat(hists, 0))
    sample_rows = [xp.host(s) for s in samples]
    out = {key: table[:, i] for i, key in enumerate(SCALAR_KEYS)}
    out["a_hist"] = (hist[:, :bins], hist[:, 2 * bins], hist[:, 2 * bins + 1])
    out["delta_log_hist"] = (hist[:, bins:2 * bins], hist[:, 2 * bins + 2],
                             hist[:, 2 * bins + 3], hist[:, 2 * bins + 4],
                             hist[:, 2 * bins + 5])
    out["delta_sample"] = [row for s in sample_rows for row in s]
    return out
