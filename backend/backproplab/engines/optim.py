"""Optimizers and global-norm clipping, written once for NumPy and torch.

Each returns the update ΔW it applies, so the probes can report ‖ΔW‖/‖W‖.
"""

from __future__ import annotations

from typing import Any

MOMENTUM = 0.9
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


def clip_scale(xp: Any, grad_norms: Any, max_norm: float | None) -> Any:
    """min(1, max_norm/‖g‖) without a host round trip; 1 when ‖g‖ is not finite
    (an exploding gradient is shown, not hidden)."""
    norm = xp.sqrt(xp.sum(grad_norms * grad_norms))
    if max_norm is None:
        return None, norm
    scale = xp.where(xp.isfinite(norm) & (norm > max_norm), max_norm / norm, 1.0 + 0.0 * norm)
    return scale, norm


class Optimizer:
    """sgd: ΔW = −lr·g;  momentum: v ← μv + g, ΔW = −lr·v;
    adam: m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², ΔW = −lr·m̂/(√v̂ + ε)."""

    def __init__(self, name: str, lr: float):
        self.name, self.lr = name, lr
        self.t = 0
        self.m: list | None = None
        self.v: list | None = None

    def updates(self, xp: Any, grads: list) -> list:
        self.t += 1
        lr = self.lr
        if self.name == "sgd":
            return xp.scaled(grads, -lr)
        if self.name == "momentum":
            self.m = list(grads) if self.m is None else \
                [MOMENTUM * m + g for m, g in zip(self.m, grads, strict=True)]
            return [-lr * m for m in self.m]
        if self.name == "adam":
            if self.m is None:
                self.m = [0.0 * g for g in grads]
                self.v = [0.0 * g for g in grads]
            self.m = [BETA1 * m + (1 - BETA1) * g for m, g in zip(self.m, grads, strict=True)]
            self.v = [BETA2 * v + (1 - BETA2) * g * g for v, g in zip(self.v, grads,
                                                                     strict=True)]
            c1, c2 = 1 - BETA1**self.t, 1 - BETA2**self.t
            return [-lr * (m / c1) / (xp.sqrt(v / c2) + ADAM_EPS)
                    for m, v in zip(self.m, self.v, strict=True)]
        raise ValueError(f"unknown optimizer {self.name!r}")
