"""Gathering a part's probes while an engine runs its forward and backward.

Two collectors, chosen by one explicit mode (the engine's `probe_mode`), with the
same results:
- HOST: arrays NumPy can read in place (the tape; torch on the CPU in float32/64).
  Each δ(l) is reduced the moment it exists, while it is still in cache (a few µs
  per layer); first rows are copied straight into stacks allocated up front.
- DEVICE: anything else (a GPU; bfloat16). The collector keeps the δ(l) and
  reduces all layers at once at the end: a handful of kernel launches and no host
  sync per layer.
"""

from __future__ import annotations

import enum
from dataclasses import fields
from typing import Any, Protocol

import numpy as np

from ...xp import NUMPY, norm_window
from .data import PartProbe

STACK_BYTES = 1 << 31  # above this (2 GiB), the first rows are sliced tensor by tensor
HEAD_ROWS = 8


class ProbeMode(enum.Enum):
    HOST = "host"
    DEVICE = "device"


class Collector(Protocol):
    """forward(l, z, a) as each layer is computed; backward(l, g) with the mean-loss
    cotangent at z(l) as soon as it is final; params(l, gW, gb, W) optionally, right
    after the layer's gradients, for norms taken in cache. Layers are 0..L, L the
    output. finish() -> the part's PartProbe."""

    def forward(self, index: int, z: Any, a: Any) -> None: ...

    def backward(self, index: int, g: Any) -> None: ...

    def params(self, index: int, gW: Any, gb: Any, W: Any) -> None: ...

    def finish(self) -> PartProbe: ...


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


class HostCollector:
    """The collector for arrays in host memory, in NumPy with as little Python per
    layer as possible (it runs 2·depth times per recorded step): dead units are looked
    for past the first rows only where those rows are zero; the bias norms of all
    hidden layers are taken at the end in one pass."""

    def __init__(self, xp: Any, depth: int, rows: int, width: int, out_dim: int,
                 dtype: Any, scale: float = 1.0):
        self.depth, self.n, self.scale = depth, rows, scale
        self.view, self.back = xp.as_numpy, xp.from_numpy  # zero-copy both ways
        dtype = np.dtype(dtype)
        self.Z, self.A, self.D = (np.empty((depth, rows, width), dtype) for _ in range(3))
        self.out = [np.empty((rows, out_dim), dtype) for _ in range(3)]  # z, a, δ rows
        layers = depth + 1
        self.norms = np.zeros((layers, 3))  # ‖δ‖, ‖∇W‖, ‖W‖
        self.seen = np.zeros((layers, 2), dtype=bool)  # backward, params reached
        self.alive = np.zeros((layers, max(width, out_dim)), dtype=bool)
        self.biases = np.empty((depth, width), dtype)  # hidden ∇b, reduced at the end
        self.bias_out: Any = None
        self.window = norm_window(dtype)

    def forward(self, index: int, z: Any, a: Any) -> None:
        z, a = self.view(z), self.view(a)
        if index < self.depth:
            self.Z[index] = z[:self.n]
            self.A[index] = a[:self.n]
        else:
            self.out[0][...] = z[:self.n]
            self.out[1][...] = a[:self.n]

    def backward(self, index: int, g: Any) -> None:
        g = self.view(g)
        self.norms[index, 0] = NUMPY.safe_norm(g)
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
        norms = self.norms[index]
        norms[1], norms[2] = NUMPY.safe_norm(view(gW)), NUMPY.safe_norm(view(W))
        self.seen[index, 1] = True
        if index < self.depth:
            self.biases[index] = view(gb)
        else:
            self.bias_out = view(gb)

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
            bias_norms = np.concatenate([NUMPY.row_norms(self.biases),
                                         [NUMPY.safe_norm(self.bias_out)]])
            param_norms = {"grad_w": norms[:, 1], "grad_b": bias_norms, "weight": norms[:, 2]}
        width, out_dim = self.Z.shape[2], out[0].shape[1]
        part = PartProbe(self.Z, self.A, self.D, out[0], out[2], norms[:, 0],
                         self.alive[:depth, :width], self.alive[depth, :out_dim], param_norms)
        back = self.back  # to the engine's arrays (zero-copy)
        arrays = {f.name: back(getattr(part, f.name)) for f in fields(PartProbe)
                  if f.name != "param_norms"}
        return PartProbe(**arrays, param_norms=None if param_norms is None else
                         {k: back(v) for k, v in param_norms.items()})


class DeviceCollector:
    """Keeps the tensors themselves (the engine keeps them for its backward anyway):
    nothing is launched per layer; finish() reduces all layers at once."""

    def __init__(self, xp: Any, depth: int, n_sub: int, scale: float = 1.0):
        self.xp, self.n, self.scale = xp, n_sub, scale
        layers = depth + 1
        self.z: list = [None] * layers
        self.a: list = [None] * layers
        self.d: list = [None] * layers

    def forward(self, index: int, z: Any, a: Any) -> None:
        self.z[index], self.a[index] = z, a

    def backward(self, index: int, g: Any) -> None:
        self.d[index] = g

    def params(self, index: int, gW: Any, gb: Any, W: Any) -> None:
        pass  # the engine's norms of all layers at once are cheaper than one per layer

    def finish(self) -> PartProbe:
        xp, n = self.xp, self.n
        hidden = len(self.z) - 1
        for i, d in enumerate(self.d):
            if d is None:  # no cotangent reached z(l): the loss does not depend on it
                self.d[i] = 0.0 * self.z[i]
        Z, A = (_first_rows_stacked(xp, t[:hidden], n) for t in (self.z, self.a))
        z_out = xp.rows(self.z[hidden], n, copy=True)
        full, d_out_full = xp.stack(self.d[:hidden]), self.d[hidden]
        norms = xp.concat([xp.row_norms(full), xp.norms([d_out_full])])
        D, d_out = full[:, :n] * self.scale, xp.rows(d_out_full, n, copy=True) * self.scale
        return PartProbe(Z, A, D, z_out, d_out, norms, xp.stacked_alive(full),
                         xp.alive_units(d_out_full))


def _first_rows_stacked(xp: Any, tensors: list, n: int) -> Any:
    """The first n rows of each tensor, stacked (L, n, W): one stack of the whole
    tensors and one slice (two kernels however deep the net) unless that stack would
    be large, then a slice per tensor."""
    if len(tensors) * xp.nbytes(tensors[0]) <= STACK_BYTES:
        return xp.contiguous(xp.stack(tensors)[:, :n])
    return xp.stack([xp.rows(t, n, copy=False) for t in tensors])


def make_collector(mode: ProbeMode, xp: Any, depth: int, n_sub: int, *, rows: int, width: int,
                   out_dim: int, dtype: Any = None) -> Collector:
    """The collector of one part of `rows` examples (dtype: the NumPy dtype of the
    arrays, for the host mode)."""
    if mode is ProbeMode.HOST:
        return HostCollector(xp, depth, min(n_sub, rows), width, out_dim, dtype,
                             scale=float(rows))
    return DeviceCollector(xp, depth, n_sub, scale=float(rows))
