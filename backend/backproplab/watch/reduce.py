"""One recorded step's statistics: reduced on the device in a fixed number of
operations (however many modules), packed into one float64 vector, moved to the host
in one transfer, and unpacked into the record's layers.

Exact over the whole batch: ‖δ‖ = ‖∂L/∂(output)‖ (over several calls of a module in
one step, the norm of all its outputs' δ together), the output mean, gradient and
weight norms, dead units. Over a fixed random subsample of ≤1024 values per module
(capture.SAMPLE): the output standard deviation, the saturated fraction and both
histograms; over ≤1024 fixed entries of each weight: the update ratio ‖ΔW‖/‖W‖ (exact
for smaller weights), so that no copy of the weights is kept."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .capture import SAMPLE, StepCapture

TANH_SATURATED = math.sqrt(0.95)  # tanh' = 1 − a² < 0.05  ⇔  |a| > √0.95
SIGMOID_SATURATED = 0.05 * 0.25  # σ' = a(1 − a) < 5% of its maximum 1/4
KIND_CODES = {"tanh": 1.0, "sigmoid": 2.0}
FLOAT_COLUMNS = ("a_mean", "a_std", "saturated_frac", "dead_frac", "delta_norm",
                 "grad_w_norm", "grad_b_norm", "weight_norm", "update_norm", "sampled_w_norm",
                 "a_lo", "a_hi", "d_lo", "d_hi", "d_zero", "d_nonfinite")
_ARANGE: dict = {}


def _arange(torch: Any, n: int, device: Any) -> Any:
    key = (n, str(device))
    found = _ARANGE.get(key)
    if found is None:
        found = _ARANGE[key] = torch.arange(n, device=device)
    return found


@dataclass
class Plan:
    """What stays the same from step to step: per module its saturation kind code,
    whether it is a rectifier, its weights and biases; the other parameters (not in a
    watched module) for the total gradient norm."""

    saturation: list[float]
    rectifier: list[bool]
    weights: list[list]
    biases: list[list]
    others: list
    bins: int


def _saturated(torch: Any, A: Any, real: Any, n: Any, codes: list[float]) -> Any:
    """Saturated fraction of the rows of saturating modules (tanh, sigmoid), 0 elsewhere."""
    out = torch.zeros(A.shape[0], dtype=A.dtype, device=A.device)
    for code, test in ((1.0, lambda a: torch.abs(a) > TANH_SATURATED),
                       (2.0, lambda a: a * (1 - a) < SIGMOID_SATURATED)):
        rows = [i for i, c in enumerate(codes) if c == code]
        if rows:
            index = torch.tensor(rows, device=A.device)
            hit = test(A[index])
            if real is not None:
                hit = hit & real[index]
            out[index] = hit.sum(1).to(A.dtype) / n[index]
    return out


def _dead(torch: Any, maxima_by_module: list, modules: int, dtype: Any, device: Any) -> Any:
    """Dead-unit fraction of rectifiers: a unit (element of the per-example output) is 0
    for every example of the batch."""
    dead = torch.zeros(modules, dtype=dtype, device=device)
    maxima = [(i, m) for i, m in enumerate(maxima_by_module) if m is not None]
    if not maxima:
        return dead
    seg = torch.cat([torch.full((m.numel(),), i, device=device) for i, m in maxima])
    zeros = (torch.cat([m.reshape(-1) for _, m in maxima]) == 0).to(dtype)
    sizes = torch.ones(modules, dtype=dtype)
    sizes[[i for i, _ in maxima]] = torch.tensor([float(m.numel()) for _, m in maxima],
                                                 dtype=dtype)
    return dead.index_add_(0, seg, zeros) / sizes.to(device)


def _histograms(torch: Any, values: Any, real: Any, bins: int):
    """Per-row histograms of the finite (and real: not padding) entries: lo, hi (M,),
    counts (M, bins); uniform bins on [lo, hi], the largest value in the last bin; no
    data-dependent branch (no host sync)."""
    rows = values.shape[0]
    valid = torch.isfinite(values)
    if real is not None:
        valid = valid & real
    lo = torch.where(valid, values, math.inf).amin(1)
    hi = torch.where(valid, values, -math.inf).amax(1)
    some = hi >= lo
    lo, hi = torch.where(some, lo, 0.0), torch.where(some, hi, 0.0)
    scale = bins / torch.clamp(hi - lo, min=1e-12)
    pos = torch.clamp(torch.floor((values - lo[:, None]) * scale[:, None]), 0, bins - 1)
    idx = torch.where(valid & torch.isfinite(pos), pos, float(bins)).long()
    idx = idx + _arange(torch, rows, values.device)[:, None] * (bins + 1)
    counts = torch.bincount(idx.reshape(-1), minlength=rows * (bins + 1))
    return lo, hi, counts.reshape(rows, bins + 1)[:, :bins]


def _stack(torch: Any, samples: list, dtype: Any, device: Any) -> Any:
    zeros = None
    rows = []
    for s in samples:
        if s is None:
            if zeros is None:
                zeros = torch.zeros(SAMPLE, dtype=dtype, device=device)
            s = zeros
        rows.append(s)
    if all(r.dtype == dtype for r in rows):
        return torch.stack(rows)
    return torch.stack([r.to(dtype) for r in rows])


def _segment_sum(torch: Any, parts: list[list], dtype: Any, device: Any, square: bool):
    """Σ over each module's list of 0-d tensors (of squares when `square`), (M,)."""
    flat = [t for p in parts for t in p]
    out = torch.zeros(len(parts), dtype=dtype, device=device)
    if not flat:
        return out
    seg = torch.tensor([i for i, p in enumerate(parts) for _ in p], device=device)
    values = torch.stack([t if t.dtype == dtype else t.to(dtype) for t in flat])
    return out.index_add_(0, seg, values * values if square else values)


def device_summary(cap: StepCapture, plan: Plan, grads: list[list], updates: list[list],
                   sampled: list[list], extras: list, device: Any, dtype: Any) -> np.ndarray:
    """The packed statistics on the host: (M, len(FLOAT_COLUMNS) + 2·bins) then the
    extras (0-d tensors or floats) flattened after them."""
    import torch

    modules, bins = len(plan.weights), plan.bins
    A = _stack(torch, cap.a_sample, dtype, device)
    D = _stack(torch, cap.d_sample, dtype, device)
    # the per-module counts in one host-to-device copy
    counts_in = torch.tensor([cap.a_count, cap.d_count, [max(c, 1) for c in cap.a_count],
                              [max(c, 1) for c in cap.out_numel]], dtype=dtype).to(device)
    n_a, numel = counts_in[2], counts_in[3]
    # a module with fewer than SAMPLE values (or none this step) has padding to mask
    real_a = real_d = None
    if any(c != SAMPLE for c in cap.a_count) or any(c != SAMPLE for c in cap.d_count):
        k = _arange(torch, SAMPLE, device)[None, :]
        real_a, real_d = k < counts_in[0][:, None], k < counts_in[1][:, None]
    # moments of the subsample, the exact mean from the whole outputs' sums
    if real_a is None:
        std = torch.sqrt(torch.var_mean(A, 1, correction=0)[0])
    else:
        mean_s = torch.where(real_a, A, 0.0).sum(1) / n_a
        std = torch.sqrt(torch.where(real_a, (A - mean_s[:, None]) ** 2, 0.0).sum(1) / n_a)
    a_mean = _segment_sum(torch, cap.out_sums, dtype, device, square=False) / numel
    saturated = _saturated(torch, A, real_a, n_a, plan.saturation)
    delta_norm = torch.sqrt(_segment_sum(torch, cap.delta_norms, dtype, device, square=True))
    dead = _dead(torch, cap.a_max, modules, dtype, device)
    logs = torch.log10(torch.abs(D))  # 0 → −inf: counted apart, out of the histogram
    real = None if real_a is None else torch.cat([real_a, real_d])
    lo, hi, counts = _histograms(torch, torch.cat([A, logs]), real, bins)
    zero = D == 0
    d_zero = (zero if real_d is None else zero & real_d).sum(1)
    # NaN and ±Inf among the sampled δ: what is neither in a bin nor zero
    d_nonfinite = counts_in[1] - counts[modules:].sum(1) - d_zero
    norms = _param_norms(torch, grads, updates, sampled, plan, dtype, device)
    columns = torch.stack([a_mean, std, saturated, dead, delta_norm, *norms,
                           lo[:modules], hi[:modules], lo[modules:], hi[modules:],
                           d_zero.to(dtype), d_nonfinite.to(dtype)], 1)
    table = torch.cat([columns, counts[:modules].to(dtype), counts[modules:].to(dtype)], 1)
    tail = [e if isinstance(e, torch.Tensor) else torch.tensor(float(e)) for e in extras]
    tail = torch.stack([t.detach().reshape(()).to(device=device, dtype=torch.float64)
                        for t in tail]) if tail else torch.zeros(0, dtype=torch.float64)
    packed = torch.cat([table.reshape(-1).to(torch.float64), tail.to(device)])
    return packed.cpu().numpy()  # the one device-to-host transfer of the step


def _param_norms(torch: Any, grads: list[list], updates: list[list], sampled: list[list],
                 plan: Plan, dtype: Any, device: Any) -> list:
    """‖∇W‖, ‖∇b‖, ‖W‖ per module (weights: every parameter not named like a bias), and
    ‖ΔW‖ and ‖W‖ over the weights' sampled entries, from one fused norm over every
    tensor; grads = (weight grads, bias grads) per module."""
    modules = len(plan.weights)
    tensors, seg = [], []
    groups = (grads[0], grads[1], plan.weights, updates, sampled)
    for group, lists in enumerate(groups):
        for i, ts in enumerate(lists):
            for t in ts:
                tensors.append(t.detach())
                seg.append(group * modules + i)
    out = torch.zeros(len(groups) * modules, dtype=dtype, device=device)
    if tensors:
        norms = torch._foreach_norm(tensors)
        values = torch.stack([n if n.dtype == dtype else n.to(dtype) for n in norms])
        out.index_add_(0, torch.tensor(seg).to(device), values * values)
    return list(torch.sqrt(out).reshape(len(groups), modules))


def host_layers(packed: np.ndarray, names: list[str], kinds: list[str], order: list[int],
                plan: Plan, cap: StepCapture, has: dict) -> tuple[list[dict], np.ndarray, bool]:
    """The record's layers in `order` (forward order), and the extras after the table.
    Statistics a module does not have are None: no forward this step (a_*), no δ, no
    parameter of that kind or no gradient, not a rectifier (dead_frac), not saturating."""
    bins = plan.bins
    width = len(FLOAT_COLUMNS) + 2 * bins
    modules = len(names)
    table = packed[:modules * width].reshape(modules, width)
    rows = table.tolist()
    layers = []
    c = {k: j for j, k in enumerate(FLOAT_COLUMNS)}
    base = len(FLOAT_COLUMNS)
    for index, i in enumerate(order):
        r = rows[i]
        forward = cap.a_sample[i] is not None
        backward = cap.d_sample[i] is not None
        weight = r[c["weight_norm"]] if plan.weights[i] else None
        layer = {
            "index": index, "name": names[i], "kind": kinds[i],
            "delta_norm": r[c["delta_norm"]] if backward else None,
            "grad_w_norm": r[c["grad_w_norm"]] if has["grad_w"][i] else None,
            "grad_b_norm": r[c["grad_b_norm"]] if has["grad_b"][i] else None,
            "weight_norm": weight,
            "update_ratio": r[c["update_norm"]] / r[c["sampled_w_norm"]]
            if has["update"][i] and r[c["sampled_w_norm"]] else None,
            "a_mean": r[c["a_mean"]] if forward else None,
            "a_std": r[c["a_std"]] if forward else None,
            "saturated_frac": r[c["saturated_frac"]] if forward and plan.saturation[i]
            else None,
            "dead_frac": r[c["dead_frac"]] if cap.a_max[i] is not None else None,
            "a_hist": {"lo": r[c["a_lo"]], "hi": r[c["a_hi"]],
                       "counts": [int(v) for v in r[base:base + bins]]} if forward else None,
            "delta_log_hist": {"lo": r[c["d_lo"]], "hi": r[c["d_hi"]],
                               "counts": [int(v) for v in r[base + bins:base + 2 * bins]],
                               "zero": int(r[c["d_zero"]]),
                               "nonfinite": int(r[c["d_nonfinite"]])} if backward else None,
        }
        layers.append(layer)
    return layers, packed[modules * width:], bool(np.isfinite(table).all())
