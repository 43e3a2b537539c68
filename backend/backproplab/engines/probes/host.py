"""The reduction of a group of layers in host memory, in NumPy (far less overhead
per call than torch at these sizes)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ...model.norms import NORMS
from ...xp import NUMPY
from .data import ProbeData
from .layout import Summary
from .stats import histograms, sampled_units, saturation_rule


@functools.cache
def _bin_offsets(layers: int, stride: int) -> np.ndarray:
    offsets = (np.arange(layers, dtype=np.intp) * stride)[:, None]
    offsets.flags.writeable = False
    return offsets


def host_histograms(values: np.ndarray, bins: int, scratch: np.ndarray | None = None):
    """`histograms` when every value is finite (None otherwise), with the same
    arithmetic; the positions are written into `scratch` (may be `values`)."""
    layers = values.shape[0]
    lo, hi = values.min(1), values.max(1)  # NaN and ±inf reach lo or hi
    width = hi - lo  # and then width, as does an overflow of the difference
    if not np.isfinite(width).all():
        return None
    scale = bins / np.maximum(width, 1e-12)
    pos = np.subtract(values, lo[:, None], out=scratch)
    pos *= scale[:, None]
    idx = pos.astype(np.intp)  # pos >= 0: truncation is floor
    idx += _bin_offsets(layers, bins + 1)
    counts = np.zeros((layers, bins + 1), dtype=np.int64)
    np.add.at(counts.reshape(-1), idx.reshape(-1), 1)  # faster than bincount in NumPy 2
    counts[:, bins - 1] += counts[:, bins]  # pos = bins: the largest value, last bin
    return lo, hi, counts[:, :bins]


def group_stats(activation: str, norm: str, Z: np.ndarray, A: np.ndarray, D: np.ndarray,
                bins: int, sample_units: np.ndarray, delta_norm: Any,
                dead: Any) -> dict[str, Any]:
    """Statistics of a group of equally shaped layers from the subsample stacked as
    (L, n, W), as Summary fields (without the parameter norms); delta_norm and dead
    come from the whole batch.

    As few passes and temporaries as can be: one scratch array serves the centred
    values, |δ|, log10|δ| and the bin positions in turn (a recorded step follows a
    training step that has flushed the caches, so every temporary is a trip to
    memory). Histograms with a non-finite value take the general, masked code."""
    layers = Z.shape[0]
    u = NORMS[norm].forward(Z, NUMPY)[0] if activation != "linear" else Z
    count = max(Z[0].size, 1)
    scratch = np.empty_like(Z)
    flat = scratch.reshape(layers, -1)
    moments = []
    for x in (Z, A):
        mean = x.mean((1, 2))
        centred = np.subtract(x, mean[:, None, None], out=scratch)
        moments += [mean, np.sqrt(np.einsum("lij,lij->l", centred, centred) / count)]
    c_lo, c_hi = saturation_rule(activation)
    if c_lo == -c_hi and c_hi < math.inf:  # symmetric (tanh, sigmoid): |u| ≥ c
        mask = np.abs(u, out=scratch) >= c_hi
    elif c_lo > -math.inf or c_hi < math.inf:
        mask = np.less_equal(u, c_lo) | np.greater_equal(u, c_hi)
    else:
        mask = None
    saturated = (np.zeros(layers) if mask is None else
                 mask.reshape(layers, -1).view(np.uint8).sum(1, dtype=np.int64) / count)
    a_hist = host_histograms(A.reshape(layers, -1), bins, flat)
    if a_hist is None:
        a_hist = histograms(NUMPY, A.reshape(layers, -1), bins)
    logs = np.abs(D.reshape(layers, -1), out=flat)
    np.log10(logs, out=logs)  # zeros become -inf, and stay out of the histogram
    d_hist = host_histograms(logs, bins, flat)
    if d_hist is None:
        d_hist = histograms(NUMPY, logs, bins)
        d_zero = (logs == -np.inf).sum(1)
        d_nonfinite = (np.isnan(logs) | (logs == np.inf)).sum(1)
    else:
        d_zero = d_nonfinite = np.zeros(layers)
    sample = D[:, 0, :][:, sample_units[: D.shape[2]]] if D.shape[1] else D[:, 0, :0]
    z_mean, z_std, a_mean, a_std = moments
    return {"z_mean": z_mean, "z_std": z_std, "a_mean": a_mean, "a_std": a_std,
            "saturated_frac": saturated, "dead_frac": dead, "delta_norm": delta_norm,
            "a_lo": a_hist[0], "a_hi": a_hist[1], "a_counts": a_hist[2],
            "d_lo": d_hist[0], "d_hi": d_hist[1], "d_counts": d_hist[2],
            "d_zero": d_zero, "d_nonfinite": d_nonfinite, "delta_sample": sample}


def summarize_host(data: ProbeData, norms: dict, activation: str, norm: str, bins: int,
                   delta_samples: int, seed: int) -> Summary:
    """Every layer's statistics from data in host memory (NumPy arrays)."""
    hidden, width, out_dim = data.Z.shape[0], data.Z.shape[2], data.z_out.shape[1]
    alive = NUMPY.to_float(data.alive)
    dead = np.concatenate([1.0 - alive[:hidden] / width, 1.0 - alive[hidden:] / out_dim])
    delta_norm = NUMPY.to_float(data.delta_norm)
    groups = [
        group_stats(activation, norm, data.Z, data.A, data.D, bins,
                    sampled_units(seed, width, delta_samples), delta_norm[:hidden],
                    dead[:hidden]),
        group_stats("linear", norm, data.z_out[None], data.z_out[None], data.d_out[None],
                    bins, np.arange(min(delta_samples, out_dim)), delta_norm[hidden:],
                    dead[hidden:])]
    n = {key: NUMPY.to_float(v) for key, v in norms.items()}
    return Summary.of_groups(groups, grad_w_norm=n["grad_w"], grad_b_norm=n["grad_b"],
                             weight_norm=n["weight"], update_ratio=n["update"] / n["weight"])
