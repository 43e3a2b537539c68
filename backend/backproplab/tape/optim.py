"""Gradient clipping by global norm and gradient accumulation over microbatches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .transforms import tree_flatten, tree_map, value_and_grad


def global_norm(grads: Any) -> float:
    """‖g‖ over every leaf of a gradient pytree."""
    return float(np.sqrt(sum(float(np.sum(np.square(g))) for g in tree_flatten(grads)[0])))


def clip_by_global_norm(grads: Any, max_norm: float) -> tuple[Any, float]:
    """Scale grads by min(1, max_norm/‖g‖); returns (clipped, norm before clipping).

    A non-finite norm is passed through unchanged: exploding gradients are shown, not hidden.
    """
    norm = global_norm(grads)
    if not np.isfinite(norm) or norm <= max_norm:
        return grads, norm
    scale = max_norm / norm
    return tree_map(lambda g: g * np.asarray(scale, dtype=np.asarray(g).dtype), grads), norm


def split_batch(arrays: Sequence[np.ndarray], microbatches: int) -> list[tuple]:
    """Cut each array along axis 0 into `microbatches` nearly equal parts."""
    n = len(arrays[0])
    bounds = [round(k * n / microbatches) for k in range(microbatches + 1)]
    return [tuple(a[lo:hi] for a in arrays) for lo, hi in zip(bounds[:-1], bounds[1:],
                                                              strict=True) if hi > lo]


def accumulate_gradients(loss_fn: Callable, params: Any, batch: Sequence[np.ndarray],
                         microbatches: int) -> tuple[float, Any]:
    """Mean loss and gradient over a batch, computed as k microbatches.

    A minibatch gradient is the mean of per-example gradients, so weighting each
    microbatch's mean gradient by its share n_i/N gives the full-batch gradient.
    """
    n = len(batch[0])
    vg = value_and_grad(loss_fn)
    total_loss, total = 0.0, None
    for part in split_batch(batch, microbatches):
        weight = len(part[0]) / n
        loss, g = vg(params, *part)
        total_loss += weight * float(loss)
        scaled = tree_map(lambda x, w=weight: x * np.asarray(w, dtype=np.asarray(x).dtype), g)
        total = scaled if total is None else tree_map(np.add, total, scaled)
    return total_loss, total
