"""The reduction of the hidden layers where the data are (a GPU), in as few kernels
as the statistics allow: about 90 operations whatever the depth, no host sync but
the one transfer at the end.

z and a moments in one pass over both stacks, the a and log10|δ| histograms in
one, every result packed (`Layout`) into one float64 vector and read back at
once. The output layer's few values travel in that same vector and are reduced on
the host, where its ~50 small operations cost less than 50 kernel launches."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...model.norms import NORMS
from .data import ProbeData
from .host import group_stats
from .layout import Layout, Summary
from .stats import histograms, sampled_units, saturated_fraction

MOMENTS = ("z_mean", "z_std", "a_mean", "a_std", "saturated_frac", "a_lo", "a_hi", "d_lo",
           "d_hi")
NORM_COLUMNS = Layout(tuple((name, 1) for name in (
    "delta_norm", "alive", "grad_w", "grad_b", "weight", "update")))


def _float_layout(samples: int) -> Layout:
    return Layout(tuple((name, 1) for name in MOMENTS) + (("delta_sample", samples),))


def _count_layout(bins: int) -> Layout:
    return Layout((("a_counts", bins), ("d_counts", bins), ("d_zero", 1)))


def summarize_device(xp: Any, data: ProbeData, norms: dict, activation: str, norm: str,
                     bins: int, delta_samples: int, seed: int) -> Summary:
    Z, A, D = (xp.to_single(x) for x in (data.Z, data.A, data.D))
    layers, n, width = Z.shape
    units = sampled_units(seed, width, delta_samples)
    var, mean = xp.var_mean(xp.concat([Z, A], axis=0), (1, 2))  # z(l) then a(l), (2L,)
    u = NORMS[norm].forward(Z, xp)[0] if activation != "linear" else Z
    logs = xp.log10(xp.abs(D.reshape(layers, -1)))  # zeros -> -inf, out of the histogram
    lo, hi, counts = histograms(xp, xp.concat([A.reshape(layers, -1), logs], axis=0), bins)
    std = xp.sqrt(var)
    floats, ints = _float_layout(len(units)), _count_layout(bins)
    block = xp.concat([
        xp.to_float(floats.pack(xp, {
            "z_mean": mean[:layers], "z_std": std[:layers], "a_mean": mean[layers:],
            "a_std": std[layers:], "saturated_frac": saturated_fraction(xp, activation, u),
            "a_lo": lo[:layers], "a_hi": hi[:layers], "d_lo": lo[layers:], "d_hi": hi[layers:],
            "delta_sample": D[:, 0, :][:, xp.index(units, D)]})),  # δ of example 0
        xp.to_float(ints.pack(xp, {
            "a_counts": counts[:layers], "d_counts": counts[layers:],
            # the non-finite rest: from the counts, on the host
            "d_zero": xp.sum(logs == -math.inf, axis=1)}))], axis=1)
    columns = NORM_COLUMNS.pack(xp, {
        "delta_norm": xp.to_float(data.delta_norm), "alive": xp.to_float(data.alive),
        **{key: xp.to_float(norms[key]) for key in ("grad_w", "grad_b", "weight", "update")}})
    out_dtype = data.z_out.dtype
    packed = xp.host(xp.concat([block.reshape(-1), columns.reshape(-1),
                                xp.to_float(data.z_out).reshape(-1),
                                xp.to_float(data.d_out).reshape(-1)]))
    # unpack: the hidden block, the per-layer norms, then the output layer's rows
    hidden_size, columns_size = layers * block.shape[1], (layers + 1) * NORM_COLUMNS.width
    hidden = Layout(floats.groups + ints.groups).unpack(
        packed[:hidden_size].reshape(layers, -1))
    cols = NORM_COLUMNS.unpack(
        packed[hidden_size:hidden_size + columns_size].reshape(layers + 1, -1))
    host_dtype = np.float64 if str(out_dtype).endswith("float64") else np.float32
    z_out, d_out = (part.reshape(n, -1).astype(host_dtype)
                    for part in np.split(packed[hidden_size + columns_size:], 2))
    dead = 1.0 - cols["alive"] / np.array([width] * layers + [z_out.shape[1]], np.float64)
    hidden["dead_frac"], hidden["delta_norm"] = dead[:layers], cols["delta_norm"][:layers]
    hidden["d_nonfinite"] = n * width - hidden["d_counts"].sum(1) - hidden["d_zero"]
    hidden["delta_sample"] = hidden["delta_sample"].reshape(layers, -1)
    with np.errstate(all="ignore"):
        output = group_stats("linear", norm, z_out[None], z_out[None], d_out[None], bins,
                             np.arange(min(delta_samples, z_out.shape[1])),
                             cols["delta_norm"][layers:], dead[layers:])
    return Summary.of_groups([hidden, output], grad_w_norm=cols["grad_w"],
                             grad_b_norm=cols["grad_b"], weight_norm=cols["weight"],
                             update_ratio=cols["update"] / cols["weight"])
