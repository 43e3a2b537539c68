"""What the collectors leave: a part's probes, and the whole step's."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SUBSAMPLE_VALUES = 1024  # values per layer for moments, saturation and histograms
HIST_EXAMPLES = 32
MIN_EXAMPLES = 4


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


def _alive_counts(xp: Any, alive_hidden: Any, alive_out: Any) -> Any:
    counts = xp.concat([xp.sum(alive_hidden, axis=1), xp.sum(alive_out, axis=0)[None]])
    return xp.to_float(counts)


def combine(xp: Any, parts: list[tuple[int, PartProbe]], batch: int) -> ProbeData:
    """The step's probe data from its parts (size, probe): the part's δ norms are of
    its mean-loss cotangents, so times the part size for per-example ones;
    subsamples are the first rows."""
    if len(parts) == 1:
        size, p = parts[0]
        return ProbeData(p.Z, p.A, p.D, p.z_out, p.d_out,
                         p.norms * (float(size) / math.sqrt(batch)),
                         _alive_counts(xp, p.alive_hidden, p.alive_out))
    probes = [p for _, p in parts]
    n = subsample_size(batch, probes[0].Z.shape[2])  # parts may each hold fewer rows

    def first_rows(arrays: list, axis: int) -> Any:
        joined = xp.concat(arrays, axis=axis)
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
