"""The typed layout of a record's statistics: named fields, offsets computed.

`Summary` is what a reduction hands the runner: one array per statistic, one row
per layer (input side first, output last). `Layout` packs named column groups
into one block (so a device reads its results back in one transfer) and unpacks
them by name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

# the per-layer scalars of a record, in the record's order
SCALAR_KEYS = ("z_mean", "z_std", "a_mean", "a_std", "saturated_frac", "dead_frac",
               "delta_norm", "grad_w_norm", "grad_b_norm", "weight_norm", "update_ratio")


@dataclass(frozen=True)
class Layout:
    """Named column groups of a (rows, width) block: (name, columns) in order; a group
    of one column unpacks to a vector."""

    groups: tuple[tuple[str, int], ...]

    @property
    def width(self) -> int:
        return sum(size for _, size in self.groups)

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for name, size in self.groups:
            out[name] = slice(start, start + size)
            start += size
        return out

    def pack(self, xp: Any, values: dict[str, Any]) -> Any:
        """The block, from {name: (rows,) for one column, (rows, columns) otherwise}, all
        one dtype: each run of vectors is one stack, then one concatenation."""
        pieces, run = [], []
        for name, size in self.groups:
            if size == 1 and values[name].ndim == 1:
                run.append(values[name])
                continue
            if run:
                pieces.append(xp.stack(run, axis=1))
                run = []
            pieces.append(values[name])
        if run:
            pieces.append(xp.stack(run, axis=1))
        return pieces[0] if len(pieces) == 1 else xp.concat(pieces, axis=1)

    def unpack(self, block: Any) -> dict[str, Any]:
        return {name: block[:, s.start] if s.stop - s.start == 1 else block[:, s]
                for name, s in self.slices().items()}


@dataclass
class Summary:
    """One recorded step's probes on the host, a row per layer. The scalars are named
    as in SCALAR_KEYS; the a(l) histogram: a_counts (L+1, bins) on [a_lo, a_hi];
    the log10|δ(l)| histogram: d_counts on [d_lo, d_hi], with the exact zeros and
    the non-finite values counted apart; delta_sample: a list of values per layer."""

    z_mean: np.ndarray
    z_std: np.ndarray
    a_mean: np.ndarray
    a_std: np.ndarray
    saturated_frac: np.ndarray
    dead_frac: np.ndarray
    delta_norm: np.ndarray
    grad_w_norm: np.ndarray
    grad_b_norm: np.ndarray
    weight_norm: np.ndarray
    update_ratio: np.ndarray
    a_counts: np.ndarray
    a_lo: np.ndarray
    a_hi: np.ndarray
    d_counts: np.ndarray
    d_lo: np.ndarray
    d_hi: np.ndarray
    d_zero: np.ndarray
    d_nonfinite: np.ndarray
    delta_sample: list

    @classmethod
    def of_groups(cls, groups: list[dict[str, Any]], **shared: Any) -> Summary:
        """Rows of layer groups stacked in order; `shared` already covers every layer."""
        values = dict(shared)
        for f in fields(cls):
            if f.name in values:
                continue
            parts = [g[f.name] for g in groups]
            values[f.name] = ([row for p in parts for row in np.asarray(p, np.float64).tolist()]
                              if f.name == "delta_sample"
                              else np.concatenate([np.asarray(p, np.float64) for p in parts]))
        return cls(**values)

    def layers(self) -> list[dict[str, Any]]:
        """The record's `layers` entries (without index and kind), as Python values."""
        scalars = [getattr(self, key).tolist() for key in SCALAR_KEYS]
        a_counts = self.a_counts.astype(np.int64).tolist()
        d_counts = self.d_counts.astype(np.int64).tolist()
        a_lo, a_hi, d_lo, d_hi = (v.tolist() for v in (self.a_lo, self.a_hi, self.d_lo,
                                                       self.d_hi))
        d_zero, d_nonfinite = (v.astype(np.int64).tolist() for v in (self.d_zero,
                                                                     self.d_nonfinite))
        out = []
        for i in range(len(a_counts)):
            layer = {key: column[i] for key, column in zip(SCALAR_KEYS, scalars, strict=True)}
            layer["a_hist"] = {"lo": a_lo[i], "hi": a_hi[i], "counts": a_counts[i]}
            layer["delta_log_hist"] = {"lo": d_lo[i], "hi": d_hi[i], "counts": d_counts[i],
                                       "zero": d_zero[i], "nonfinite": d_nonfinite[i]}
            layer["delta_sample"] = self.delta_sample[i]
            out.append(layer)
        return out
