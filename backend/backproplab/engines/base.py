"""What both engines share: microbatching, clipping, the optimizer step and the
probe bundle. An engine supplies only its forward/backward and array plumbing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import batch, init_params
from ..model.spec import RunSpec
from ..tape.optim import split_batch
from .optim import Optimizer, clip_scale


@dataclass
class Pass:
    """One forward/backward over a (micro)batch. Probe fields only when probing."""

    loss: Any
    grads: list  # [∇W(1), ∇b(1), ..., ∇W(L+1), ∇b(L+1)] of the mean loss
    output: Any
    zs: list | None = None
    acts: list | None = None
    z_cotangents: list | None = None  # ∂(mean loss)/∂z(l)


@dataclass
class StepResult:
    loss: Any
    output: Any
    labels: np.ndarray
    zs: list | None
    acts: list | None
    deltas: list | None  # per-example δ(l), once multiplied by delta_scale
    norms: dict | None  # grad_w, grad_b, weight, update: per-layer norm vectors on the device
    delta_scale: float = 1.0  # the probes scale what they read, not every δ


class Engine:
    """Base: params are a flat list [W(1), b(1), ..., W(L+1), b(L+1)] on the device."""

    xp: Any

    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.cancel = None  # a threading.Event checked between layers
        self.optimizer = Optimizer(spec.optimizer, spec.lr)
        self.params = [self.to_device(p) for pair in init_params(spec) for p in pair]

    # --- engine-specific -------------------------------------------------------
    def to_device(self, array: np.ndarray) -> Any:
        raise NotImplementedError

    def forward_backward(self, x: Any, labels: np.ndarray, targets: Any, probe: bool) -> Pass:
        raise NotImplementedError

    def apply(self, updates: list) -> None:
        raise NotImplementedError

    def make_batch(self, step: int) -> tuple:
        return batch(self.spec, step)

    # --- shared ------------------------------------------------------------------
    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            from .runner import Cancelled

            raise Cancelled()

    @property
    def weights(self) -> list:
        return self.params[0::2]

    def params_host(self) -> list[np.ndarray]:
        return [self.xp.host(p) for p in self.params]

    def train_step(self, step: int, probe: bool, update: bool = True) -> StepResult:
        spec, xp = self.spec, self.xp
        x, labels, targets = self.make_batch(step)
        n = len(x)
        passes = []
        for xb, lb, tb in split_batch((x, labels, targets), spec.microbatches):
            weight = len(xb) / n  # the mean gradient is the share-weighted mean of parts
            p = self.forward_backward(self.to_device(xb), lb, self.to_device(tb), probe)
            passes.append((weight, len(xb), p))
        if len(passes) == 1:
            loss, grads = passes[0][2].loss, passes[0][2].grads
        else:
            loss = sum(w * p.loss for w, _, p in passes)
            grads = [sum(w * p.grads[i] for w, _, p in passes)
                     for i in range(len(passes[0][2].grads))]
        output = passes[0][2].output if len(passes) == 1 else \
            xp.concat([p.output for _, _, p in passes], 0)
        grad_norms = xp.norms(grads) if (probe or spec.clip is not None) else None
        scale = None
        if spec.clip is not None:
            scale, _ = clip_scale(xp, grad_norms, spec.clip)
            grads = xp.scaled(grads, scale)
        updates = self.optimizer.updates(xp, grads) if update else None
        norms = None
        if probe:
            weight_norms = xp.norms(self.weights)
            if updates is None:
                update_norms = 0.0 * weight_norms
            elif spec.optimizer == "sgd":  # ΔW = −lr·(clip scale)·∇W: no pass over ΔW needed
                update_norms = spec.lr * grad_norms[0::2] * (1.0 if scale is None else scale)
            else:
                update_norms = xp.norms(updates[0::2])
            norms = {"grad_w": grad_norms[0::2], "grad_b": grad_norms[1::2],
                     "weight": weight_norms, "update": update_norms}
        if updates is not None:
            self.apply(updates)
        if not probe:
            return StepResult(loss, output, labels, None, None, None, None)
        layers = range(len(passes[0][2].zs))
        # δ(l) of each example's own loss: the mean-loss cotangent times the part size
        if len(passes) == 1:
            p, size = passes[0][2], passes[0][1]
            return StepResult(loss, output, labels, p.zs, p.acts, p.z_cotangents, norms,
                              delta_scale=float(size))
        deltas = [xp.concat([p.z_cotangents[i] * size for _, size, p in passes], 0)
                  for i in layers]
        zs = [xp.concat([p.zs[i] for _, _, p in passes], 0) for i in layers]
        acts = [xp.concat([p.acts[i] for _, _, p in passes], 0) for i in layers]
        return StepResult(loss, output, labels, zs, acts, deltas, norms)
