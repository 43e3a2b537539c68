"""One recorded step's statistics: reduced on the device in a fixed number of
operations (however many modules), packed into one float64 vector, moved to the host
in one transfer, and unpacked into the record's layers.

The number of operations is what the step costs on a CPU: after forward and backward
the caches are cold, and each operation then costs ~10–25 µs whatever its size. So
the hooks write into buffers the reduction reads as they are, the small index and
mask tensors of a step's layout are made once, and masks are arithmetic (bool
compares and masked fills cost several times a multiplication on the CPU).

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


def _saturated(torch: Any, A: Any, real: Any, n: Any, plan: Plan) -> Any:
    """Saturated fraction of the rows of saturating modules (tanh, sigmoid), 0 elsewhere."""
    rows = plan.buffers.saturating(plan.saturation, A.device)
    if not rows:
        return plan.buffers.zeros(A.shape[0], A.dtype, A.device)
    out = torch.zeros(A.shape[0], dtype=A.dtype, device=A.device)
    for code, index in rows:
        a = A[index]
        hit = (torch.abs(a) > TANH_SATURATED if code == 1.0
               else a * (1 - a) < SIGMOID_SATURATED).to(A.dtype)
        if real is not None:
            hit = hit * real[index]
        out[index] = hit.sum(1) / n[index]
    return out


def _histograms(torch: Any, values: Any, idx: Any, bins: int, buffers: Buffers):
    """Per-row histograms of the finite entries (NaN, ±Inf and padding, passed as NaN,
    are left out): lo, hi (M,), counts (M, bins); uniform bins on [lo, hi], the largest
    value in the last bin; no data-dependent branch (no host sync). Works in place on
    `values` (overwritten) and `idx` (int32, its shape), buffers kept from step to step:
    fresh temporaries of this size are fresh pages from the allocator on every step,
    whose faults cost more than the arithmetic."""
    rows, inf = values.shape[0], math.inf
    values.nan_to_num_(nan=-inf, posinf=-inf, neginf=-inf)  # non-finite: −∞
    hi = values.amax(1)
    values.nan_to_num_(nan=inf, posinf=inf, neginf=inf)  # non-finite: +∞ (only −∞ were)
    lo = values.amin(1)
    # a row without a finite value (lo = +∞, hi = −∞): 0 and 0
    lo, hi = lo.nan_to_num_(posinf=0.0), hi.nan_to_num_(neginf=0.0)
    scale = torch.div(buffers.scalar(bins, values), torch.clamp(hi - lo, min=1e-12))
    # finite entries land in [0, bins]; the others (and ∞·0 when hi − lo overflows) at −1
    values.sub_(lo[:, None]).mul_(scale[:, None])
    values.nan_to_num_(nan=-1.0, posinf=-1.0, neginf=-1.0)
    # to integers (truncation is the floor on [0, bins]); bin b of row r at
    # r·(bins + 1) + b + 1, left out at r·(bins + 1)
    idx.copy_(values)
    idx.clamp_(max=bins - 1).add_(buffers.offsets(rows, bins, idx))
    counts = torch.bincount(idx.reshape(-1), minlength=rows * (bins + 1))
    return lo, hi, counts.reshape(rows, bins + 1)[:, 1:]


def _log10_abs(torch: Any, D: Any, real: Any, work: Any, buffers: Buffers) -> Any:
    """log10 |D| in place, NaN where D is 0 (left out of the histogram); returns the
    number of zeros per row (among `real`, a bool mask, or all). The CPU's log of 0,
    of NaN and of subnormal numbers takes a slow path (~10× and ~25× the time per
    value, and a ReLU network's δ are half zeros): subnormals are scaled by 2⁶⁴ (2¹²⁸
    in float64) into the normal range and zeros set to a normal number too small to
    move a scaled subnormal before the log, the scale's log taken off both after, and
    the zeros made NaN (×0/0). Arithmetic where it can: on the CPU,
    comparisons and masked fills cost several times a multiplication (the one cost:
    an infinite δ turns NaN, as non-finite as before)."""
    tiny = torch.finfo(D.dtype).tiny
    # float32: a subnormal ≥ 2⁻¹⁴⁹ scales to ≥ 2⁻⁸⁵, whose half ulp 2⁻¹⁰⁹ ≫ 2⁻¹²⁰ ≥ tiny
    # float64: ≥ 2⁻¹⁰⁷⁴ scales to ≥ 2⁻⁹⁴⁶, half ulp 2⁻⁹⁹⁹ ≫ 2⁻¹⁰¹⁰ ≥ tiny
    power, floor = (64, 2.0 ** -120) if D.dtype == torch.float32 else (128, 2.0 ** -1010)
    rows = D.shape[0]
    zero = D == 0
    zeros = torch.sum(zero if real is None else zero & real, 1, dtype=D.dtype)
    D.abs_()
    # 1 at a zero or a subnormal, else 0 (NaN stays NaN): ⌈max(1 − |d|/tiny, 0)⌉
    sub = torch.add(buffers.scalar(1.0, D), D, alpha=-1.0 / tiny, out=work[:rows])
    sub.clamp_(min=0.0).ceil_()
    nan_at_zero = torch.div(D, D, out=work[rows:])  # 0/0 = NaN at the zeros, else 1
    D.addcmul_(sub, D, value=2.0 ** power - 1)  # subnormals · 2^power (sub·D: no ∞·0)
    D.add_(sub, alpha=floor)  # zeros → floor; a scaled subnormal does not move
    D.log10_()
    D.add_(sub, alpha=-power * math.log10(2.0)).mul_(nan_at_zero)
    return zeros


def _missing(samples: list) -> list[int]:
    return [i for i, s in enumerate(samples) if s is None]


class Layout:
    """The small tensors one step's shape implies (how many values each module's
    output and δ had, which rectifiers have how many units): made once and reused, as
    the shape repeats step to step."""

    def __init__(self, torch: Any, cap: StepCapture, modules: int, dtype: Any, device: Any):
        self.shape = (list(cap.a_count), list(cap.d_count), list(cap.out_numel),
                      list(cap.units))
        self.counts = torch.tensor([cap.a_count, cap.d_count,
                                    [max(c, 1) for c in cap.a_count],
                                    [max(c, 1) for c in cap.out_numel]],
                                   dtype=dtype).to(device)
        self.n_a, self.numel = self.counts[2], self.counts[3]
        # a module with fewer than SAMPLE values (or none this step) has padding to
        # leave out: masks of 1 (real) and 0, and 0 and NaN to add before the histograms
        self.real_a = self.real_d = self.real_d_bool = self.pad = None
        if any(c != SAMPLE for c in cap.a_count) or any(c != SAMPLE for c in cap.d_count):
            k = torch.arange(SAMPLE, device=device)[None, :]
            self.real_a = (k < self.counts[0][:, None]).to(dtype)
            self.real_d_bool = k < self.counts[1][:, None]
            self.real_d = self.real_d_bool.to(dtype)
            real = torch.cat([self.real_a, self.real_d])
            self.pad = torch.zeros_like(real).masked_fill_(real == 0, math.nan)
        # modules without a forward or a δ this step (a count of 0 values says so only
        # for an empty output): their rows are cleared
        self.missing_a, self.missing_d = _missing(cap.a_sample), _missing(cap.d_sample)
        # rectifiers: how many units each has (1 elsewhere, whose count stays 0)
        self.dead_size = torch.tensor([max(n, 1) for n in cap.units], dtype=dtype,
                                      device=device)

    def fits(self, cap: StepCapture) -> bool:
        a_count, d_count, numel, units = self.shape
        return (cap.a_count == a_count and cap.d_count == d_count
                and cap.out_numel == numel and cap.units == units
                and _missing(cap.a_sample) == self.missing_a
                and _missing(cap.d_sample) == self.missing_d)


class Buffers:
    """Tensors kept from one recorded step to the next (the stacked samples, the
    histogram bins, the layouts' index tensors), reallocated only when the shapes
    change."""

    def __init__(self):
        self.found: dict = {}
        self.layouts: list[Layout] = []

    def get(self, name: str, shape: tuple, dtype: Any, device: Any) -> Any:
        import torch

        key = (name, tuple(shape), dtype, str(device))
        t = self.found.get(key)
        if t is None:
            t = self.found[key] = torch.empty(shape, dtype=dtype, device=device)
        return t

    def zeros(self, n: int, dtype: Any, device: Any) -> Any:
        """A (n,) tensor of zeros, never written to."""
        key = ("zeros", n, dtype, str(device))
        t = self.found.get(key)
        if t is None:
            import torch

            t = self.found[key] = torch.zeros(n, dtype=dtype, device=device)
        return t

    def scalar(self, value: float, like: Any) -> Any:
        """A 0-d tensor holding `value` (an operand of one fused op)."""
        key = ("scalar", value, like.dtype, str(like.device))
        t = self.found.get(key)
        if t is None:
            import torch

            t = self.found[key] = torch.tensor(value, dtype=like.dtype, device=like.device)
        return t

    def offsets(self, rows: int, bins: int, like: Any) -> Any:
        key = ("offsets", rows, bins, like.dtype, str(like.device))
        t = self.found.get(key)
        if t is None:
            import torch

            t = self.found[key] = (torch.arange(rows, dtype=like.dtype, device=like.device)
                                   * (bins + 1) + 1)[:, None]
        return t

    def saturating(self, codes: list[float], device: Any) -> list:
        """(code, row indices) of each saturation kind present."""
        key = ("saturating", str(device))
        found = self.found.get(key)
        if found is None:
            import torch

            found = self.found[key] = [
                (code, torch.tensor([i for i, c in enumerate(codes) if c == code],
                                    device=device))
                for code in sorted(set(codes) - {0.0})]
        return found

    def layout(self, cap: StepCapture, modules: int, dtype: Any, device: Any) -> Layout:
        """The latest layouts (the usual step: the same as the step before), matched by
        comparing lists of ints."""
        for found in self.layouts:
            if found.fits(cap):
                return found
        import torch

        found = Layout(torch, cap, modules, dtype, device)
        self.layouts = [found] + self.layouts[:7]
        return found


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


def _add_later_calls(torch: Any, first: Any, more: dict[int, list], norms: bool) -> Any:
    """Each module's first call's sums (or norms), with those of its later calls in
    the step added in (for norms: the root of the sum of squares)."""
    for i, values in more.items():
        extra = torch.stack([v.to(first.dtype) for v in values])
        if norms:
            first[i] = torch.sqrt(first[i] * first[i] + (extra * extra).sum())
        else:
            first[i] += extra.sum()
    return first


def device_summary(cap: StepCapture, plan: Plan, norms: list, extras: list, device: Any,
                   dtype: Any) -> np.ndarray:
    """The packed statistics on the host: (M, len(FLOAT_COLUMNS) + 2·bins) then the
    extras (0-d tensors or floats) flattened after them; `norms`: the parameter
    columns (see param_norms)."""
    import torch

    modules, bins, buffers, rows = len(plan.weights), plan.bins, plan.buffers, cap.rows
    lay = buffers.layout(cap, modules, dtype, device)
    # rows 0..M−1: the outputs' samples, M..2M−1: the δ samples, then log10 |δ| (the
    # histograms' input), as the hooks wrote them (a module that did not run: zeros)
    values = rows.values
    for i in lay.missing_a:
        values[i].zero_()
        rows.sums[i] = rows.dead[i] = 0.0
    for i in lay.missing_d:
        values[modules + i].zero_()
        rows.norms[i] = 0.0
    A, D = values[:modules], values[modules:]
    # one work buffer as large as `values` (a smaller working set than one buffer per
    # use: the caches are cold after backward): scratch for the moments, then the
    # zero and subnormal masks of δ, then (as int32) the histograms' bin numbers
    work = buffers.get("work", (2 * modules, SAMPLE), dtype, device)
    scratch = work[:modules]
    # moments of the subsample (two passes, in place), the exact mean from the sums
    if lay.real_a is None:  # (var_mean is several times slower on the CPU)
        torch.sub(A, A.mean(1, keepdim=True), out=scratch)
        std = torch.linalg.vector_norm(scratch, dim=1).mul_(1.0 / math.sqrt(SAMPLE))
    else:
        mean_s = torch.mul(A, lay.real_a, out=scratch).sum(1) / lay.n_a
        torch.sub(A, mean_s[:, None], out=scratch).mul_(lay.real_a)
        std = torch.linalg.vector_norm(scratch, dim=1).div_(lay.n_a.sqrt())
    a_mean = _add_later_calls(torch, rows.sums, cap.more_sums, False) / lay.numel
    saturated = _saturated(torch, A, lay.real_a, lay.n_a, plan)
    delta_norm = _add_later_calls(torch, rows.norms, cap.more_norms, True)
    dead = rows.dead / lay.dead_size  # a unit: an element of the per-example output
    d_zero = _log10_abs(torch, D, lay.real_d_bool, work, buffers)  # zeros counted apart
    if lay.pad is not None:  # padding: NaN, left out of the histograms
        values.add_(lay.pad)
    idx = work.view(-1).view(torch.int32)[:values.numel()].view(values.shape)
    lo, hi, counts = _histograms(torch, values, idx, bins, buffers)
    # NaN and ±Inf among the sampled δ: what is neither in a bin nor zero
    d_nonfinite = lay.counts[1] - counts[modules:].sum(1, dtype=dtype) - d_zero
    columns = torch.stack([a_mean, std, saturated, dead, delta_norm, *norms,
                           lo[:modules], hi[:modules], lo[modules:], hi[modules:],
                           d_zero, d_nonfinite], 1)
    table = torch.cat([columns, counts[:modules], counts[modules:]], 1)
    # the extras: tensors (loss, norms, scales) after the table, plain numbers as they
    # are; one concatenation to float64 and the one device-to-host transfer of the step
    tensors = [e.detach().reshape(1) if e.device == table.device
               else e.detach().reshape(1).to(table.device)
               for e in extras if isinstance(e, torch.Tensor)]
    packed = torch.cat([table.reshape(-1), *tensors],
                       out=buffers.get("packed", (table.numel() + len(tensors),),
                                       torch.float64, device)).cpu().numpy()
    numbers = iter(packed[table.numel():].tolist())
    tail = [next(numbers) if isinstance(e, torch.Tensor) else float(e) for e in extras]
    return np.concatenate([packed[:table.numel()], np.asarray(tail, dtype=np.float64)])


PARAM_GROUPS = ("grad_w", "grad_b", "weight", "update", "sampled_w")


def param_norms(torch: Any, taken: list, cold: list, squares: Any, segments: tuple,
                modules: int, dtype: Any, device: Any) -> list:
    """Per module ‖∇W‖, ‖∇b‖, ‖W‖ (weights: every parameter not named like a bias),
    and ‖ΔW‖, ‖W‖ over the weights' sampled entries, in PARAM_GROUPS order, each the
    root of a sum of squares over the module's tensors: `taken`, 0-d norms taken
    before (‖W‖ before the update), then `cold`, tensors normed here in one fused
    call, then `squares`, sums of squares taken before (or None); `segments`, one per
    value: group·modules + module."""
    norms = list(taken)
    if cold:
        norms += torch._foreach_norm(cold)
    parts = []
    if norms:
        if any(n.dtype != dtype for n in norms):
            norms = [n.to(dtype) for n in norms]
        values = torch.stack(norms)
        parts.append(values.mul_(values))
    if squares is not None:
        parts.append(squares.to(dtype))
    out = torch.zeros(len(PARAM_GROUPS) * modules, dtype=dtype, device=device)
    if parts:
        out.index_add_(0, _segments(torch, segments, device),
                       parts[0] if len(parts) == 1 else torch.cat(parts))
    return list(torch.sqrt_(out).reshape(len(PARAM_GROUPS), modules))


(A_MEAN, A_STD, SATURATED, DEAD, DELTA, GRAD_W, GRAD_B, WEIGHT, UPDATE, SAMPLED_W, A_LO, A_HI,
 D_LO, D_HI, D_ZERO, D_NONFINITE) = range(len(FLOAT_COLUMNS))


def host_layers(packed: np.ndarray, names: list[str], kinds: list[str], order: list[int],
                plan: Plan, cap: StepCapture, has: dict) -> tuple[list[dict], np.ndarray, bool]:
    """The record's layers in `order` (forward order), and the extras after the table.
    Statistics a module does not have are None: no forward this step (a_*), no δ, no
    parameter of that kind or no gradient, not a rectifier (dead_frac), not saturating."""
    bins = plan.bins
    columns = len(FLOAT_COLUMNS)
    width = columns + 2 * bins
    modules = len(names)
    table = packed[:modules * width].reshape(modules, width)
    rows = table[:, :columns].tolist()
    a_counts = table[:, columns:columns + bins].astype(np.int64).tolist()  # ints, at once
    d_counts = table[:, columns + bins:].astype(np.int64).tolist()
    has_w, has_b, has_weight, has_update = (has["grad_w"], has["grad_b"], has["weight"],
                                            has["update"])
    saturating = plan.saturation
    layers = []
    for index, i in enumerate(order):
        r = rows[i]
        forward = cap.a_sample[i] is not None
        backward = cap.d_sample[i] is not None
        layers.append({
            "index": index, "name": names[i], "kind": kinds[i],
            "delta_norm": r[DELTA] if backward else None,
            "grad_w_norm": r[GRAD_W] if has_w[i] else None,
            "grad_b_norm": r[GRAD_B] if has_b[i] else None,
            "weight_norm": r[WEIGHT] if has_weight[i] else None,  # no forward: not taken
            "update_ratio": r[UPDATE] / r[SAMPLED_W] if has_update[i] and r[SAMPLED_W]
            else None,
            "a_mean": r[A_MEAN] if forward else None,
            "a_std": r[A_STD] if forward else None,
            "saturated_frac": r[SATURATED] if forward and saturating[i] else None,
            "dead_frac": r[DEAD] if cap.units[i] else None,
            "a_hist": {"lo": r[A_LO], "hi": r[A_HI], "counts": a_counts[i]} if forward
            else None,
            "delta_log_hist": {"lo": r[D_LO], "hi": r[D_HI], "counts": d_counts[i],
                               "zero": int(r[D_ZERO]), "nonfinite": int(r[D_NONFINITE])}
            if backward else None,
        })
    return layers, packed[modules * width:], bool(np.isfinite(table).all())
