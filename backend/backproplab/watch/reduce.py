"""One recorded step's statistics: reduced on the device in a fixed number of
operations (however many modules), packed into one float64 vector, moved to the host
in one transfer, and unpacked into the record's layers.

Exact over the whole batch: ‖δ‖ = ‖∂L/∂(output)‖ (over several calls of a module in
one step, the norm of all its outputs' δ together), the output mean, gradient and
weight norms, dead units. Over a fixed random subsample of ≤1024 values per module
(capture.SAMPLE): the output standard deviation, the saturated fraction and both
histograms; over ≤1024 entries of each weight, spread over it at a fixed stride: the
update ratio ‖ΔW‖/‖W‖ (exact for smaller weights), so that no copy of the weights is
kept. Weight norms and the update ratio's ‖W‖ are taken before the optimizer's
update, as the Lab's are."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    buffers: Buffers = field(default_factory=lambda: Buffers())


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
    maxima = [(i, m) for i, m in enumerate(maxima_by_module) if m is not None]
    if not maxima:
        return torch.zeros(modules, dtype=dtype, device=device)
    layout = tuple((i, m.numel()) for i, m in maxima)

    def sizes() -> list[float]:
        out = [1.0] * modules
        for i, n in layout:
            out[i] = float(n)
        return out

    seg = _segments(torch, ("dead", layout), device,
                    lambda: [i for i, n in layout for _ in range(n)])
    zeros = (torch.cat([m.reshape(-1) for _, m in maxima]) == 0).to(dtype)
    dead = torch.zeros(modules, dtype=dtype, device=device).index_add_(0, seg, zeros)
    return dead / _segments(torch, ("sizes", modules, layout), device, sizes).to(dtype)


def _histograms(torch: Any, values: Any, bins: int, buffers: Buffers):
    """Per-row histograms of the finite entries (NaN, ±Inf and padding, passed as NaN,
    are left out): lo, hi (M,), counts (M, bins); uniform bins on [lo, hi], the largest
    value in the last bin; no data-dependent branch (no host sync). Works in place on
    `values` (overwritten) and on buffers kept from step to step: fresh temporaries of
    this size are fresh pages from the allocator on every step, whose faults cost more
    than the arithmetic."""
    rows, inf = values.shape[0], math.inf
    values.nan_to_num_(nan=-inf, posinf=-inf, neginf=-inf)  # non-finite: −∞
    hi = values.amax(1)
    values.nan_to_num_(nan=inf, posinf=inf, neginf=inf)  # non-finite: +∞ (only −∞ were)
    lo = values.amin(1)
    some = hi >= lo  # False for a row without a finite value (lo = inf, hi = -inf)
    lo, hi = torch.where(some, lo, 0.0), torch.where(some, hi, 0.0)
    scale = bins / torch.clamp(hi - lo, min=1e-12)
    # finite entries land in [0, bins]; the others (and ∞·0 when hi − lo overflows) at −1
    values.sub_(lo[:, None]).mul_(scale[:, None])
    values.nan_to_num_(nan=-1.0, posinf=-1.0, neginf=-1.0)
    # bin b of row r at r·(bins + 1) + b + 1; left out at r·(bins + 1)
    values.floor_().clamp_(max=bins - 1).add_(buffers.offsets(rows, bins, values))
    idx = buffers.get("bins", values.shape, torch.int32, values.device)
    idx.copy_(values)
    counts = torch.bincount(idx.reshape(-1), minlength=rows * (bins + 1))
    return lo, hi, counts.reshape(rows, bins + 1)[:, 1:]


class Buffers:
    """Tensors kept from one recorded step to the next (the stacked samples, the
    histogram bins), reallocated only when the number of modules changes."""

    def __init__(self):
        self.found: dict = {}

    def get(self, name: str, shape: tuple, dtype: Any, device: Any) -> Any:
        import torch

        key = (name, tuple(shape), dtype, str(device))
        t = self.found.get(key)
        if t is None:
            t = self.found[key] = torch.empty(shape, dtype=dtype, device=device)
        return t

    def offsets(self, rows: int, bins: int, like: Any) -> Any:
        key = ("offsets", rows, bins, like.dtype, str(like.device))
        t = self.found.get(key)
        if t is None:
            import torch

            t = self.found[key] = (torch.arange(rows, dtype=like.dtype, device=like.device)
                                   * (bins + 1) + 1)[:, None]
        return t


def _stack(torch: Any, samples: list, out: Any) -> Any:
    """The modules' samples as the rows of `out` (zeros for a module without one)."""
    zeros = None
    rows = []
    for s in samples:
        if s is None:
            if zeros is None:
                zeros = torch.zeros(SAMPLE, dtype=out.dtype, device=out.device)
            s = zeros
        rows.append(s if s.dtype == out.dtype else s.to(out.dtype))
    return torch.stack(rows, out=out)


_SEGMENTS: dict = {}


def _segments(torch: Any, key: tuple, device: Any, make: Any = None) -> Any:
    """A small index tensor made once per layout (the layout repeats every step):
    torch.tensor(make() if make else key)."""
    found = _SEGMENTS.get((key, str(device)))
    if found is None:
        if len(_SEGMENTS) > 64:
            _SEGMENTS.clear()
        found = _SEGMENTS[(key, str(device))] = torch.tensor(make() if make else key,
                                                             device=device)
    return found


def _segment_sum(torch: Any, parts: list[list], dtype: Any, device: Any, square: bool):
    """Σ over each module's list of 0-d tensors (of squares when `square`), (M,); one
    stack when every module has exactly one (the usual step)."""
    flat = [t for p in parts for t in p]
    if not flat:
        return torch.zeros(len(parts), dtype=dtype, device=device)
    values = torch.stack([t if t.dtype == dtype else t.to(dtype) for t in flat])
    if square:
        values = values * values
    if len(flat) == len(parts) and all(len(p) == 1 for p in parts):
        return values
    seg = _segments(torch, tuple(i for i, p in enumerate(parts) for _ in p), device)
    return torch.zeros(len(parts), dtype=dtype, device=device).index_add_(0, seg, values)


def device_summary(cap: StepCapture, plan: Plan, norms: list, extras: list, device: Any,
                   dtype: Any) -> np.ndarray:
    """The packed statistics on the host: (M, len(FLOAT_COLUMNS) + 2·bins) then the
    extras (0-d tensors or floats) flattened after them; `norms`: the parameter
    columns (see param_norms)."""
    import torch

    modules, bins, buffers = len(plan.weights), plan.bins, plan.buffers
    # rows 0..M−1: the outputs' samples, M..2M−1: log10 |δ| (the histograms' input)
    values = buffers.get("values", (2 * modules, SAMPLE), dtype, device)
    A = _stack(torch, cap.a_sample, values[:modules])
    D = _stack(torch, cap.d_sample, buffers.get("delta", (modules, SAMPLE), dtype, device))
    scratch = buffers.get("scratch", (modules, SAMPLE), dtype, device)
    # the per-module counts in one host-to-device copy
    counts_in = torch.tensor([cap.a_count, cap.d_count, [max(c, 1) for c in cap.a_count],
                              [max(c, 1) for c in cap.out_numel]], dtype=dtype).to(device)
    n_a, numel = counts_in[2], counts_in[3]
    # a module with fewer than SAMPLE values (or none this step) has padding to mask
    real_a = real_d = None
    if any(c != SAMPLE for c in cap.a_count) or any(c != SAMPLE for c in cap.d_count):
        k = _arange(torch, SAMPLE, device)[None, :]
        real_a, real_d = k < counts_in[0][:, None], k < counts_in[1][:, None]
    # moments of the subsample (two passes, in place), the exact mean from the sums
    if real_a is None:  # (var_mean is several times slower on the CPU)
        torch.sub(A, A.mean(1)[:, None], out=scratch)
        std = torch.sqrt(scratch.mul_(scratch).mean(1))
    else:
        pad_a = ~real_a
        mean_s = scratch.copy_(A).masked_fill_(pad_a, 0.0).sum(1) / n_a
        torch.sub(A, mean_s[:, None], out=scratch)
        std = torch.sqrt(scratch.mul_(scratch).masked_fill_(pad_a, 0.0).sum(1) / n_a)
    a_mean = _segment_sum(torch, cap.out_sums, dtype, device, square=False) / numel
    saturated = _saturated(torch, A, real_a, n_a, plan.saturation)
    delta_norm = torch.sqrt(_segment_sum(torch, cap.delta_norms, dtype, device, square=True))
    dead = _dead(torch, cap.a_max, modules, dtype, device)
    zero = D == 0
    d_zero = (zero if real_d is None else zero & real_d).sum(1)
    torch.abs(D, out=values[modules:]).log10_()  # 0 → −inf: counted apart (d_zero)
    if real_a is not None:  # padding: left out of the histograms
        values.masked_fill_(~torch.cat([real_a, real_d]), math.nan)
    lo, hi, counts = _histograms(torch, values, bins, buffers)
    # NaN and ±Inf among the sampled δ: what is neither in a bin nor zero
    d_nonfinite = counts_in[1] - counts[modules:].sum(1) - d_zero
    columns = torch.stack([a_mean, std, saturated, dead, delta_norm, *norms,
                           lo[:modules], hi[:modules], lo[modules:], hi[modules:],
                           d_zero.to(dtype), d_nonfinite.to(dtype)], 1)
    table = torch.cat([columns, counts[:modules].to(dtype), counts[modules:].to(dtype)], 1)
    # the extras: tensors (loss, norms, scales) stacked, plain numbers as they are
    tensors = [e.detach().reshape(()).to(torch.float64) for e in extras
               if isinstance(e, torch.Tensor)]
    parts = [table.reshape(-1).to(torch.float64)]
    if tensors:
        parts.append(torch.stack(tensors).to(device))
    packed = torch.cat(parts).cpu().numpy()  # the one device-to-host transfer of the step
    numbers = iter(packed[table.numel():].tolist())
    tail = [next(numbers) if isinstance(e, torch.Tensor) else float(e) for e in extras]
    return np.concatenate([packed[:table.numel()], np.asarray(tail, dtype=np.float64)])


PARAM_GROUPS = ("grad_w", "grad_b", "weight", "update", "sampled_w")


def param_norms(torch: Any, taken: list[tuple], cold: list[tuple], modules: int, dtype: Any,
                device: Any) -> list:
    """Per module ‖∇W‖, ‖∇b‖, ‖W‖ (weights: every parameter not named like a bias),
    and ‖ΔW‖, ‖W‖ over the weights' sampled entries, in PARAM_GROUPS order, each the
    root of a sum of squares over the module's tensors: `taken` (segment, a 0-d norm
    taken before: ‖W‖ before the update), `cold` (segment, tensor) normed here in one
    fused call; segment = group·modules + module."""
    norms = [n for _, n in taken]
    seg = [g for g, _ in taken]
    if cold:
        norms += torch._foreach_norm([t for _, t in cold])
        seg += [g for g, _ in cold]
    out = torch.zeros(len(PARAM_GROUPS) * modules, dtype=dtype, device=device)
    if norms:
        values = torch.stack([n if n.dtype == dtype else n.to(dtype) for n in norms])
        out.index_add_(0, _segments(torch, tuple(seg), device), values * values)
    return list(torch.sqrt(out).reshape(len(PARAM_GROUPS), modules))


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
    hists = table[:, len(FLOAT_COLUMNS):].astype(np.int64).tolist()  # ints, at once
    layers = []
    c = {k: j for j, k in enumerate(FLOAT_COLUMNS)}
    for index, i in enumerate(order):
        r = rows[i]
        forward = cap.a_sample[i] is not None
        backward = cap.d_sample[i] is not None
        weight = r[c["weight_norm"]] if has["weight"][i] else None  # no forward: not taken
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
                       "counts": hists[i][:bins]} if forward else None,
            "delta_log_hist": {"lo": r[c["d_lo"]], "hi": r[c["d_hi"]],
                               "counts": hists[i][bins:],
                               "zero": int(r[c["d_zero"]]),
                               "nonfinite": int(r[c["d_nonfinite"]])} if backward else None,
        }
        layers.append(layer)
    return layers, packed[modules * width:], bool(np.isfinite(table).all())
