"""Per-layer probes, gathered where the tensors live and reduced to small
summaries before they leave the device.

Exact over the whole batch: ‖δ(l)‖ (RMS of per-example norms), dead units (no
error signal through the unit for any example), gradient and weight norms. Over
the first `subsample_size` examples (the data are drawn at random, so an unbiased
subsample): moments, saturation, histograms and δ samples.

Two ways to gather the exact statistics, with the same results:
- inline (CPU): an engine hands each δ(l) to a `Collector` the moment it exists,
  and the collector reduces it while it is still in cache (a few µs per layer);
- batched (GPU): the collector keeps the δ(l) and reduces all layers at once at
  the end, a handful of kernel launches and no host sync per layer.

Two ways to reduce the subsamples to a record's statistics (`summarize`), with the
same results: in NumPy for data in host memory (`_host_group_stats`), and on the
device in about 90 operations, whatever the depth, read back in one transfer
(`_device_summarize`).

A record's size depends on depth and bins, never on width or batch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..model.activations import MAX_DERIVATIVE, derivative

SUBSAMPLE_VALUES = 1024  # values per layer for moments, saturation and histograms
HIST_EXAMPLES = 32
MIN_EXAMPLES = 4
SATURATION = 0.05  # φ'(u) below 5% of its maximum counts as saturated
LAYERNORM_EPS = 1e-5

SCALAR_KEYS = ("z_mean", "z_std", "a_mean", "a_std", "saturated_frac", "dead_frac",
               "delta_norm", "grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio")


def subsample_size(batch: int, width: int) -> int:
    """Examples in the subsample: ~SUBSAMPLE_VALUES values per layer, 4 to 32 examples."""
    per_values = -(-SUBSAMPLE_VALUES // max(width, 1))
    return min(batch, max(MIN_EXAMPLES, min(HIST_EXAMPLES, per_values)))


@dataclass
class PartProbe:
    """What one forward/backward over a (micro)batch part leaves for the probes.

    Hidden layers are stacked (L, n, W); the output layer is kept apart. D and d_out
    are per-example δ (the cotangents of the part's mean loss times the part's size);
    norms are the Frobenius norms of those cotangents (float64, one per layer,
    output last). param_norms, when the engine took them inline:
    {"grad_w", "grad_b", "weight"} float64 vectors of the part's gradients."""

    Z: Any
    A: Any
    D: Any
    z_out: Any
    d_out: Any
    norms: Any
    alive_hidden: Any  # (L, W) bool: some example has δ ≠ 0 through the unit
    alive_out: Any  # (out,) bool
    param_norms: dict | None = None


@dataclass
class ProbeData:
    """The probe inputs of one whole step: first-n subsamples of z, a and the
    per-example δ, exact δ norms (RMS over the batch) and alive-unit counts."""

    Z: Any
    A: Any
    D: Any
    z_out: Any
    d_out: Any
    delta_norm: Any  # (L+1,) float64
    alive: Any  # (L+1,) float64

    @property
    def zs(self) -> list:
        """z(l) rows per layer, input side first, output last (row 0 is example 0)."""
        return [self.Z[i] for i in range(self.Z.shape[0])] + [self.z_out]

    @property
    def acts(self) -> list:
        return [self.A[i] for i in range(self.A.shape[0])] + [self.z_out]


class Collector:
    """Gathers one part's probes while an engine runs its forward and backward.

    forward(l, z, a) as each layer is computed; backward(l, g) with the mean-loss
    cotangent at z(l) as soon as it is final; params(l, gW, gb, W) optionally, right
    after the layer's gradients, for norms taken in cache. Layers are 0..L, L the
    output."""

    def __init__(self, xp: Any, depth: int, n_sub: int, inline: bool, scale: float = 1.0):
        self.xp, self.n, self.inline, self.scale = xp, n_sub, inline, scale
        layers = depth + 1
        self.z: list = [None] * layers
        self.a: list = [None] * layers
        self.d: list = [None] * layers
        self.dnorm: list = [0.0] * layers
        self.alive: list = [None] * layers
        self.pnorms: list = [None] * layers

    def forward(self, index: int, z: Any, a: Any) -> None:
        """Inline: the first rows of z(l) and a(l), copied (so the engine can free the
        whole tensors as usual). Batched: the tensors themselves (the engine keeps
        them for its backward anyway); nothing is launched per layer."""
        if self.inline:
            self.z[index] = self.xp.rows(z, self.n, copy=True)
            self.a[index] = self.xp.rows(a, self.n, copy=True)
        else:
            self.z[index], self.a[index] = z, a

    def backward(self, index: int, g: Any) -> None:
        if self.inline:
            hx = self.xp
            self.dnorm[index] = hx.safe_norm(g)
            self.alive[index] = hx.alive_units(g)
            # a copy of the first rows: holding on to the whole δ(l) until the end of
            # the step costs more (the allocator cannot reuse its memory) than copying
            self.d[index] = hx.rows(g, self.n, copy=True)
        else:
            self.d[index] = g

    def params(self, index: int, gW: Any, gb: Any, W: Any) -> None:
        if self.inline:
            self.pnorms[index] = tuple(self.xp.safe_norm(t) for t in (gW, gb, W))

    def finish(self) -> PartProbe:
        xp = self.xp
        hidden = len(self.z) - 1
        for i, d in enumerate(self.d):
            if d is None:  # no cotangent reached z(l): the loss does not depend on it
                self.d[i] = 0.0 * self.z[i]
                self.alive[i] = xp.alive_units(self.d[i])
        if self.inline:
            Z, A = xp.stack(self.z[:hidden]), xp.stack(self.a[:hidden])
            z_out = self.z[hidden]
        else:
            Z, A = (_first_rows_stacked(xp, t[:hidden], self.n) for t in (self.z, self.a))
            z_out = xp.rows(self.z[hidden], self.n, copy=True)
        like = Z
        if self.inline:
            D = xp.stack(self.d[:hidden])
            norms = xp.from_host(self.dnorm, like)
            alive_hidden = xp.stack(self.alive[:hidden])
            alive_out = self.alive[hidden]
            d_out = self.d[hidden]
        else:
            full = xp.stack(self.d[:hidden])
            d_out_full = self.d[hidden]
            norms = xp.concat([xp.stacked_norms(full), xp.norms([d_out_full])])
            alive_hidden = xp.stacked_alive(full)
            alive_out = xp.alive_units(d_out_full)
            D, d_out = full[:, :self.n], xp.rows(d_out_full, self.n, copy=True)
        D, d_out = D * self.scale, d_out * self.scale  # per-example δ
        param_norms = None
        if all(p is not None for p in self.pnorms):
            columns = list(zip(*self.pnorms, strict=True))
            param_norms = {key: xp.from_host(list(col), like)
                           for key, col in zip(("grad_w", "grad_b", "weight"), columns,
                                               strict=True)}
        return PartProbe(Z, A, D, z_out, d_out, norms, alive_hidden, alive_out, param_norms)


STACK_BYTES = 1 << 31  # above this (2 GiB), the first rows are sliced tensor by tensor


def _first_rows_stacked(xp: Any, tensors: list, n: int) -> Any:
    """The first n rows of each tensor, stacked (L, n, W): one stack of the whole
    tensors and one slice (two kernels however deep the net) unless that stack would
    be large, then a slice per tensor."""
    if len(tensors) * xp.nbytes(tensors[0]) <= STACK_BYTES:
        return xp.contiguous(xp.stack(tensors)[:, :n])
    return xp.stack([xp.rows(t, n, copy=False) for t in tensors])


class HostCollector:
    """The inline collector for arrays in host memory, in NumPy with as little Python
    per layer as possible (it runs 2·depth times per recorded step): the stacks are
    allocated up front, first rows are copied straight into them, a norm is one BLAS
    dot (rescaled only when the sum of squares left its safe window), dead units are
    looked for past the first rows only where those rows are zero."""

    def __init__(self, depth: int, rows: int, width: int, out_dim: int, dtype: Any,
                 view: Callable[[Any], Any] | None, back: Callable[[Any], Any] | None,
                 scale: float = 1.0):
        self.depth, self.n, self.scale = depth, rows, scale
        self.view, self.back = view, back
        dtype = np.dtype(dtype)
        self.Z, self.A, self.D = (np.empty((depth, rows, width), dtype) for _ in range(3))
        self.out = [np.empty((rows, out_dim), dtype) for _ in range(3)]  # z, a, δ rows
        layers = depth + 1
        self.norms = np.zeros((layers, 3))  # ‖δ‖, ‖∇W‖, ‖W‖
        self.seen = np.zeros((layers, 2), dtype=bool)  # backward, params reached
        self.alive = np.zeros((layers, max(width, out_dim)), dtype=bool)
        self.biases = np.empty((depth, width), dtype)  # hidden ∇b, reduced at the end
        self.bias_out: Any = None
        self.window = norm_window_of(dtype)

    def forward(self, index: int, z: Any, a: Any) -> None:
        if self.view is not None:
            z, a = self.view(z), self.view(a)
        if index < self.depth:
            self.Z[index] = z[:self.n]
            self.A[index] = a[:self.n]
        else:
            self.out[0][...] = z[:self.n]
            self.out[1][...] = a[:self.n]

    def _norm(self, x) -> float:
        flat = x.reshape(-1)
        sq = float(np.dot(flat, flat))
        lo, hi = self.window
        return math.sqrt(sq) if lo < sq < hi else _host_safe_norm(x)

    def backward(self, index: int, g: Any) -> None:
        if self.view is not None:
            g = self.view(g)
        self.norms[index, 0] = self._norm(g)
        if g.shape[0] and g[0].all():  # the usual case: every unit alive at a glance
            self.alive[index] = True
        else:
            alive = host_alive(g)
            self.alive[index, :alive.size] = alive
        self.seen[index, 0] = True
        # per-example δ rows: the mean-loss cotangent times the part's size
        np.multiply(g[:self.n], self.scale, out=self.D[index] if index < self.depth
                    else self.out[2])

    def params(self, index: int, gW: Any, gb: Any, W: Any) -> None:
        view = self.view
        if view is not None:
            gW, gb, W = view(gW), view(gb), view(W)
        norms = self.norms[index]
        norms[1], norms[2] = self._norm(gW), self._norm(W)
        self.seen[index, 1] = True
        if index < self.depth:
            self.biases[index] = gb
        else:
            self.bias_out = gb

    def _bias_norms(self) -> np.ndarray:
        """‖∇b(l)‖ of every layer: the hidden ones from their stack, one pass."""
        depth, biases = self.depth, self.biases
        result = np.empty(depth + 1)
        if depth:
            sq = np.einsum("lw,lw->l", biases, biases).astype(np.float64)
            result[:depth] = np.sqrt(sq)
            lo, hi = self.window
            for i in np.flatnonzero(~((lo < sq) & (sq < hi))):  # under- or overflowed
                result[i] = _host_safe_norm(biases[i])
        result[depth] = self._norm(self.bias_out)
        return result

    def finish(self) -> PartProbe:
        depth, out = self.depth, self.out
        missing = ~self.seen[:, 0]  # no cotangent reached z(l): the loss does not use it
        if missing[:depth].any():
            self.D[missing[:depth]] = 0
        if missing[depth]:
            out[2][...] = 0
        norms = self.norms
        param_norms = None
        if self.seen[:, 1].all():
            param_norms = {"grad_w": norms[:, 1], "grad_b": self._bias_norms(),
                           "weight": norms[:, 2]}
        width, out_dim = self.Z.shape[2], out[0].shape[1]
        part = PartProbe(self.Z, self.A, self.D, out[0], out[2], norms[:, 0],
                         self.alive[:depth, :width], self.alive[depth, :out_dim], param_norms)
        if self.back is None:
            return part
        back = self.back  # to the engine's arrays (zero-copy)
        arrays = {f.name: back(getattr(part, f.name)) for f in fields(PartProbe)
                  if f.name != "param_norms"}
        return PartProbe(**arrays, param_norms=None if param_norms is None else
                         {k: back(v) for k, v in param_norms.items()})


def make_collector(xp: Any, depth: int, n_sub: int, inline: bool,
                   view: Callable[[Any], Any] | None = None, *, rows: int, width: int,
                   out_dim: int, dtype: Any = None) -> Collector | HostCollector:
    """HostCollector for host arrays reduced inline (dtype: their NumPy dtype),
    Collector otherwise. rows: the part's number of examples."""
    from .xp import NumpyXP

    n = min(n_sub, rows)
    if inline and dtype is not None and (xp is NumpyXP or view is not None):
        return HostCollector(depth, n, width, out_dim, dtype, view,
                             None if xp is NumpyXP else xp.from_numpy, scale=float(rows))
    return Collector(xp, depth, n_sub, inline, scale=float(rows))


HEAD_ROWS = 8


def host_alive(g: np.ndarray) -> np.ndarray:
    """Per unit (last axis): does any example (row) have g ≠ 0? NaN counts as
    nonzero. Exactly g.any(0), but a live unit almost always shows it within the
    first rows, so only the units still at zero after them are scanned further."""
    if g.shape[0] and g[0].all():  # the usual case (tanh, sigmoid, ...): one look
        return np.ones(g.shape[1], dtype=bool)
    alive = g[:HEAD_ROWS].any(0)
    if g.shape[0] <= HEAD_ROWS or alive.all():
        return alive
    rest = np.flatnonzero(~alive)
    if 4 * rest.size > alive.size:  # many dead units (ReLU): one plain pass is cheaper
        return alive | g[HEAD_ROWS:].any(0)
    alive[rest] = g[HEAD_ROWS:, rest].any(0)
    return alive


def _host_safe_norm(x) -> float:
    from .xp import NumpyXP

    return NumpyXP.safe_norm(np.asarray(x))


def norm_window_of(dtype) -> tuple[float, float]:
    from .xp import norm_window

    return norm_window(np.dtype(dtype))


def combine(xp: Any, parts: list[tuple[int, PartProbe]], batch: int) -> ProbeData:
    """The step's probe data from its parts (size, probe): the part's δ norms are of
    its mean-loss cotangents, so times the part size for per-example ones;
    subsamples are the first rows."""
    if len(parts) == 1:
        size, p = parts[0]
        scale = float(size)
        return ProbeData(p.Z, p.A, p.D, p.z_out, p.d_out,
                         p.norms * (scale / math.sqrt(batch)),
                         _alive_counts(xp, p.alive_hidden, p.alive_out))
    probes = [p for _, p in parts]
    n = subsample_size(batch, probes[0].Z.shape[2])  # parts may each hold fewer rows

    def first_rows(arrays: list, axis: int) -> Any:
        joined = xp.concat(arrays, axis)
        return joined[:, :n] if axis == 1 else joined[:n]

    squares = sum((float(size) * p.norms) ** 2 for size, p in parts)
    alive_hidden, alive_out = probes[0].alive_hidden, probes[0].alive_out
    for p in probes[1:]:
        alive_hidden = alive_hidden | p.alive_hidden
        alive_out = alive_out | p.alive_out
    return ProbeData(first_rows([p.Z for p in probes], 1), first_rows([p.A for p in probes], 1),
                     first_rows([p.D for p in probes], 1),
                     first_rows([p.z_out for p in probes], 0),
                     first_rows([p.d_out for p in probes], 0),
                     xp.sqrt(squares / batch), _alive_counts(xp, alive_hidden, alive_out))


def _alive_counts(xp: Any, alive_hidden: Any, alive_out: Any) -> Any:
    counts = xp.concat([xp.sum(alive_hidden, 1), xp.sum(alive_out, 0)[None]])
    return xp.to_float(counts)


def _histograms(xp, values, bins):
    """Per-layer histograms of the finite entries of values (L, M): lo (L,), hi (L,),
    counts (L, bins), bin edges uniform on [lo, hi], the largest value in the last bin.
    No branch on the data (on a device: no host sync), about 20 operations."""
    layers = values.shape[0]
    valid = xp.isfinite(values)
    lo = xp.amin(xp.where(valid, values, math.inf), 1)
    hi = xp.amax(xp.where(valid, values, -math.inf), 1)
    some = hi >= lo  # False for a layer without a finite value (lo = inf, hi = -inf)
    lo = xp.where(some, lo, 0.0)
    hi = xp.where(some, hi, 0.0)
    scale = bins / xp.maximum(hi - lo, 1e-12)  # 0 when hi - lo overflows
    pos = xp.clamp(xp.floor((values - lo[:, None]) * scale[:, None]), 0, bins - 1)
    # non-finite values, and positions that are not finite (∞·0 when hi - lo
    # overflows), go to an overflow bin, cut off below
    idx = xp.to_int(xp.where(valid & xp.isfinite(pos), pos, float(bins)))
    counts = xp.bincount(idx + xp.arange(layers, values)[:, None] * (bins + 1),
                         layers * (bins + 1))
    return lo, hi, counts.reshape(layers, bins + 1)[:, :bins]


@functools.cache
def saturation_rule(activation: str) -> tuple[float, float]:
    """(c_lo, c_hi) with φ'(u) < 5% of max φ'  ⇔  u ≤ c_lo or u ≥ c_hi (±inf: no such
    side). Found once from φ' itself (a scan, then bisection at each switch), so the
    probes compare instead of evaluating tanh, erf or exp on every value."""
    from .xp import NumpyXP

    limit = SATURATION * MAX_DERIVATIVE[activation]

    def saturated(u):
        return np.asarray(derivative(activation, np.asarray(u, dtype=np.float64), NumpyXP)
                          < limit)

    grid = np.linspace(-60.0, 60.0, 120_001)
    mask = saturated(grid)
    switches = np.flatnonzero(mask[1:] != mask[:-1])
    if len(switches) > 2 or (len(switches) == 2 and not mask[0]) or \
            (len(switches) == 1 and mask[0] == mask[-1]):
        raise ValueError(f"saturation of {activation!r} is not one- or two-sided")

    def edge(i):  # bisect between grid[i] and grid[i+1]: the last saturated point
        a, b = grid[i], grid[i + 1]
        inside_left = bool(mask[i])
        for _ in range(80):
            m = 0.5 * (a + b)
            if bool(saturated(m)) == inside_left:
                a = m
            else:
                b = m
        return a if inside_left else b

    c_lo, c_hi = -math.inf, math.inf
    for i in switches:
        if mask[i]:
            c_lo = float(edge(i))
        else:
            c_hi = float(edge(i))
    if not switches.size and mask[0]:
        c_lo = math.inf  # saturated everywhere (no activation here is)
    return c_lo, c_hi


def _saturated(xp, activation, u):
    c_lo, c_hi = saturation_rule(activation)
    if c_lo == -math.inf and c_hi == math.inf:
        return 0.0 * xp.mean(u, (1, 2))
    mask = None
    if c_lo > -math.inf:
        mask = u <= c_lo
    if c_hi < math.inf:
        mask = (u >= c_hi) if mask is None else (mask | (u >= c_hi))
    return xp.mean(xp.as_dtype(mask, u), (1, 2))


def _layernorm(xp, z):
    centred = z - xp.mean(z, 2)[:, :, None]
    return centred / xp.sqrt(xp.mean(centred * centred, 2)[:, :, None] + LAYERNORM_EPS)


@functools.cache
def _bin_offsets(layers: int, stride: int) -> np.ndarray:
    offsets = (np.arange(layers, dtype=np.intp) * stride)[:, None]
    offsets.flags.writeable = False
    return offsets


def _host_histograms(values: np.ndarray, bins: int, scratch: np.ndarray | None = None):
    """_histograms on the host when every value is finite (None otherwise), with the
    same arithmetic; the positions are written into `scratch` (may be `values`)."""
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


def _host_group_stats(activation, norm, Z, A, D, bins, sample_units, delta_norm, dead):
    """Statistics of a group of equally shaped layers, from the subsample stacked as
    (L, n, W) in host memory; delta_norm and dead come from the whole batch. Rows:
    scalars (L, 7) as the first seven SCALAR_KEYS, hist (L, 2·bins + 6) as in
    Summary, the δ samples (L, k).

    As few passes and temporaries as can be: one scratch array serves the centred
    values, |δ|, log10|δ| and the bin positions in turn (a recorded step follows a
    training step that has flushed the caches, so every temporary is a trip to
    memory). Histograms with a non-finite value take the general, masked code."""
    layers = Z.shape[0]
    u = _layernorm(NumpyXP_(), Z) if norm == "layernorm" and activation != "linear" else Z
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
    a_hist = _host_histograms(A.reshape(layers, -1), bins, flat)
    if a_hist is None:
        a_hist = _histograms(NumpyXP_(), A.reshape(layers, -1), bins)
    logs = np.abs(D.reshape(layers, -1), out=flat)
    np.log10(logs, out=logs)  # zeros become -inf, and stay out of the histogram
    d_hist = _host_histograms(logs, bins, flat)
    if d_hist is None:
        d_hist = _histograms(NumpyXP_(), logs, bins)
        d_zero = (logs == -np.inf).sum(1)
        d_nonfinite = (np.isnan(logs) | (logs == np.inf)).sum(1)
    else:
        d_zero = d_nonfinite = np.zeros(layers)
    sample = D[:, 0, :][:, sample_units[: D.shape[2]]] if D.shape[1] else D[:, 0, :0]
    scalars = np.stack(moments + [saturated, dead, delta_norm], 1).astype(np.float64)
    hist = np.concatenate([a_hist[2], d_hist[2],
                           np.stack([a_hist[0], a_hist[1], d_hist[0], d_hist[1], d_zero,
                                     d_nonfinite], 1)], 1, dtype=np.float64)
    return scalars, hist, sample.astype(np.float64)


def NumpyXP_():  # noqa: N802  (the array namespace, imported late: xp imports this module)
    from .xp import NumpyXP

    return NumpyXP


@dataclass
class Summary:
    """One recorded step's probes on the host: table (L+1, len(SCALAR_KEYS)) in the
    order of SCALAR_KEYS; hist (L+1, 2·bins+6): a(l) counts, log10|δ(l)| counts,
    then a lo, a hi, δ lo, δ hi, δ zeros, δ non-finite; delta_sample, a list per layer."""

    table: np.ndarray
    hist: np.ndarray
    delta_sample: list


def summarize(xp: Any, data: ProbeData, norms: dict, activation: str, norm: str, bins: int,
              delta_samples: int, seed: int, host: bool | None = None) -> Summary:
    """Per-layer statistics as host arrays (see Summary).

    Data in host memory (NumPy, torch on the CPU) are reduced with NumPy, which has
    far less per-call overhead than torch at these sizes; data on a device are reduced
    there, then three transfers per recorded step (scalars, histograms, δ samples).
    `host=False` forces the device code (tests run it on the CPU)."""
    from .xp import NumpyXP

    if host is None:
        host = xp.host_resident(data.Z)
    if host and xp is not NumpyXP:
        data = ProbeData(*(xp.as_numpy(getattr(data, f.name)) for f in fields(ProbeData)))
        norms = {key: xp.as_numpy(v) for key, v in norms.items()}
        xp = NumpyXP
    with np.errstate(all="ignore"):
        return _summarize(xp, data, norms, activation, norm, bins, delta_samples, seed, host)


def compute(xp: Any, data: ProbeData, norms: dict, activation: str, norm: str, bins: int,
            delta_samples: int, seed: int, host: bool | None = None) -> dict[str, Any]:
    """summarize's statistics keyed as in the record's layers (columns per key)."""
    summary = summarize(xp, data, norms, activation, norm, bins, delta_samples, seed, host)
    table, hist = summary.table, summary.hist
    out: dict[str, Any] = {key: table[:, i] for i, key in enumerate(SCALAR_KEYS)}
    out["a_hist"] = (hist[:, :bins], hist[:, 2 * bins], hist[:, 2 * bins + 1])
    out["delta_log_hist"] = (hist[:, bins:2 * bins], hist[:, 2 * bins + 2],
                             hist[:, 2 * bins + 3], hist[:, 2 * bins + 4],
                             hist[:, 2 * bins + 5])
    out["delta_sample"] = summary.delta_sample
    return out


@functools.cache
def sampled_units(seed: int, width: int, count: int) -> np.ndarray:
    """The hidden units whose δ components are sampled: fixed for a run."""
    units = np.random.default_rng([seed, 0x5A4D]).permutation(width)[:count]
    units.flags.writeable = False
    return units


def _device_summarize(xp, data, norms, activation, norm, bins, delta_samples, seed):
    """summarize for data on a device, in as few kernels as the statistics allow
    (about 90 operations, whatever the depth; no host sync but the one transfer at the
    end):
    z and a moments in one pass over both stacks, the a and log10|δ| histograms in
    one, every result packed into one float64 vector and read back at once. The
    output layer's few values travel in that same vector and are reduced on the
    host, where its ~50 small operations cost less than 50 kernel launches."""
    Z, A, D = (xp.to_single(x) for x in (data.Z, data.A, data.D))
    layers, n, width = Z.shape
    units = sampled_units(seed, width, delta_samples)
    var, mean = xp.var_mean(xp.concat([Z, A], 0), (1, 2))  # z(l) then a(l), (2L,)
    u = _layernorm(xp, Z) if norm == "layernorm" and activation != "linear" else Z
    logs = xp.log10(xp.abs(D.reshape(layers, -1)))  # zeros -> -inf, out of the histogram
    lo, hi, counts = _histograms(xp, xp.concat([A.reshape(layers, -1), logs], 0), bins)
    d_zero = xp.sum(logs == -math.inf, 1)  # the non-finite rest: from the counts, on the host
    sample = D[:, 0, :][:, xp.index(units, D)]  # δ of example 0 at the sampled units
    std = xp.sqrt(var)
    # the float results, then the counts, each converted once: (L, 5 + 4 + k | 2·bins + 2)
    floats = xp.concat([xp.stack([mean[:layers], std[:layers], mean[layers:], std[layers:],
                                  _saturated(xp, activation, u), lo[:layers], hi[:layers],
                                  lo[layers:], hi[layers:]], 1), sample], 1)
    ints = xp.concat([counts[:layers], counts[layers:], d_zero[:, None]], 1)
    block = xp.concat([xp.to_float(floats), xp.to_float(ints)], 1)
    columns = xp.stack([xp.to_float(v) for v in (data.delta_norm, data.alive, norms["grad_w"],
                                                  norms["grad_b"], norms["weight"],
                                                  norms["update"])], 1)
    out_dtype = data.z_out.dtype
    packed = xp.host(xp.concat([block.reshape(-1), columns.reshape(-1),
                                xp.to_float(data.z_out).reshape(-1),
                                xp.to_float(data.d_out).reshape(-1)]))
    cols = block.shape[1]
    block, rest = packed[:layers * cols].reshape(layers, cols), packed[layers * cols:]
    columns, rest = rest[:6 * (layers + 1)].reshape(layers + 1, 6), rest[6 * (layers + 1):]
    host_dtype = np.float64 if str(out_dtype).endswith("float64") else np.float32
    z_out, d_out = (part.reshape(n, -1).astype(host_dtype) for part in np.split(rest, 2))
    delta_norm, alive, grad_w, grad_b, weight, update = columns.T
    dead = 1.0 - alive / np.array([width] * layers + [z_out.shape[1]], dtype=np.float64)
    out_units = np.arange(min(delta_samples, z_out.shape[1]))
    with np.errstate(all="ignore"):
        o_scalars, o_hist, o_sample = _host_group_stats(
            "linear", norm, z_out[None], z_out[None], d_out[None], bins, out_units,
            delta_norm[layers:], dead[layers:])
    k = 9 + len(units)  # float columns: 5 statistics, 4 histogram edges, the δ samples
    scalars = np.concatenate([block[:, :5], np.stack([dead[:layers], delta_norm[:layers]], 1)],
                             1)
    d_counts, d_zero = block[:, k + bins:k + 2 * bins], block[:, k + 2 * bins]
    d_nonfinite = n * width - d_counts.sum(1) - d_zero  # NaN and ±inf among the δ
    hist = np.concatenate([block[:, k:k + 2 * bins], block[:, 5:9], d_zero[:, None],
                           d_nonfinite[:, None]], 1)
    table = np.concatenate([np.concatenate([scalars, o_scalars], 0),
                            np.stack([grad_w, grad_b, weight, update / weight], 1)], 1)
    samples = block[:, 9:k].tolist() + np.asarray(o_sample, np.float64).tolist()
    return Summary(table, np.concatenate([hist, o_hist], 0), samples)


def _summarize(xp, data, norms, activation, norm, bins, delta_samples, seed, host):
    if not host:
        return _device_summarize(xp, data, norms, activation, norm, bins, delta_samples, seed)
    width = data.Z.shape[2]
    units = sampled_units(seed, width, delta_samples)
    hidden = data.Z.shape[0]
    dead = xp.concat([1.0 - data.alive[:hidden] / width,
                      1.0 - data.alive[hidden:] / data.z_out.shape[1]])
    out_units = np.arange(min(delta_samples, data.z_out.shape[1]))
    groups = [(activation, data.Z, data.A, data.D, units, slice(0, hidden)),
              ("linear", data.z_out[None], data.z_out[None], data.d_out[None], out_units,
               slice(hidden, hidden + 1))]
    scalars, hists, samples = [], [], []
    for act, Z, A, D, unit_ids, sl in groups:
        s, h, smp = _host_group_stats(act, norm, Z, A, D, bins, unit_ids,
                                      data.delta_norm[sl], dead[sl])
        scalars.append(s)
        hists.append(h)
        samples.append(smp)
    n = norms
    table_cols = xp.stack([n["grad_w"], n["grad_b"], n["weight"], n["update"] / n["weight"]], 1)
    table = xp.host(xp.concat([xp.concat(scalars, 0), table_cols], 1))
    hist = xp.host(xp.concat(hists, 0))
    rows = [row for s in samples for row in np.asarray(xp.host(s), np.float64).tolist()]
    return Summary(table, hist, rows)
