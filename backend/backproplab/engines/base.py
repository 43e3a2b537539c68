"""What both engines share: microbatching, clipping, the optimizer step and the
probe bundle. An engine supplies only its forward/backward and array plumbing."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model import batch, init_params
from ..model.spec import RunSpec
from ..tape.optim import split_batch
from . import probes
from .optim import Optimizer, clip_scale


class Cancelled(Exception):
    """The run was cancelled between steps or layers."""


@dataclass
class Pass:
    """One forward/backward over a (micro)batch."""

    loss: Any
    grads: list  # [∇W(1), ∇b(1), ..., ∇W(L+1), ∇b(L+1)] of the mean loss
    output: Any


@dataclass
class StepResult:
    loss: Any
    output: Any
    labels: np.ndarray
    probe: probes.ProbeData | None
    norms: dict | None  # grad_w, grad_b, weight, update: per-layer norm vectors on the device
    summary: probes.Summary | None = None  # already reduced by the engine (jax: in its step)
    spectrum: np.ndarray | None = None  # the Jacobian's singular values, when taken in the step

    @property
    def zs(self) -> list | None:
        return None if self.probe is None else self.probe.zs

    @property
    def acts(self) -> list | None:
        return None if self.probe is None else self.probe.acts


class Engine:
    """Base: params are a flat list [W(1), b(1), ..., W(L+1), b(L+1)] on the device."""

    xp: Any  # the array namespace of the engine's arrays (backproplab.xp)
    probe_mode: probes.ProbeMode  # HOST: each δ(l) reduced in cache; DEVICE: all at once

    def __init__(self, spec: RunSpec):
        self.spec = spec
        self.cancel = None  # a threading.Event checked between layers
        self.optimizer = Optimizer(spec.optimizer, spec.lr)
        self.params = [self.to_device(p) for pair in init_params(spec) for p in pair]

    # --- engine-specific -------------------------------------------------------
    def to_device(self, array: np.ndarray) -> Any:
        raise NotImplementedError

    def forward_backward(self, x: Any, labels: np.ndarray, targets: Any,
                         probe: probes.Collector | None) -> Pass:
        """Loss, gradients and output; with a collector, tell it every z(l), a(l) and
        δ(l) (and optionally the layer's gradient norms) as they are computed."""
        raise NotImplementedError

    def make_batch(self, step: int) -> tuple:
        return batch(self.spec, step)

    def full_precision(self) -> contextlib.AbstractContextManager:
        """Context for matmuls outside the step (Jacobian spectra) at full float
        precision, whatever another run has set (see backproplab.xp.precision)."""
        return contextlib.nullcontext()

    # --- shared ------------------------------------------------------------------
    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled()

    @property
    def weights(self) -> list:
        return self.params[0::2]

    def params_host(self) -> list[np.ndarray]:
        return [self.xp.host(p) for p in self.params]

    def train_step(self, step: int, probe: bool, update: bool = True,
                   spectrum: bool = False) -> StepResult:
        """One step; `spectrum`: the record wants the Jacobian spectrum (an engine may
        take it inside its step, else the runner takes it from the probes)."""
        spec, xp = self.spec, self.xp
        x, labels, targets = self.make_batch(step)
        n = len(x)
        n_sub = probes.subsample_size(n, spec.width)
        passes = []
        for xb, lb, tb in split_batch((x, labels, targets), spec.microbatches):
            weight = len(xb) / n  # the mean gradient is the share-weighted mean of parts
            collector = probes.make_collector(
                self.probe_mode, xp, spec.depth, n_sub, rows=len(xb), width=spec.width,
                out_dim=spec.out_features, dtype=spec.dtype) if probe else None
            p = self.forward_backward(self.to_device(xb), lb, self.to_device(tb), collector)
            passes.append((weight, len(xb), p, collector.finish() if probe else None))
        if len(passes) == 1:
            loss, grads = passes[0][2].loss, passes[0][2].grads
            output = passes[0][2].output
        else:
            loss = sum(w * p.loss for w, _, p, _ in passes)
            grads = [sum(w * p.grads[i] for w, _, p, _ in passes)
                     for i in range(len(passes[0][2].grads))]
            output = xp.concat([p.output for _, _, p, _ in passes], axis=0)
        inline = passes[0][3].param_norms if probe and len(passes) == 1 else None
        grad_norms, weight_norms = None, None
        if inline is not None:  # taken in cache by the engine during its backward pass
            grad_norms = xp.stack([inline["grad_w"], inline["grad_b"]], axis=1).reshape(-1)
            weight_norms = inline["weight"]
        elif probe or spec.clip is not None:
            grad_norms = xp.norms(grads)
        scale = None
        if spec.clip is not None:
            scale, _ = clip_scale(xp, grad_norms, spec.clip)
            grads = xp.scaled(grads, scale)
        if probe and weight_norms is None:
            weight_norms = xp.norms(self.weights)  # before the update
        update_norms = None
        if update and spec.optimizer == "sgd":  # ΔW = −lr·(clip scale)·∇W, applied in place
            if probe:
                update_norms = spec.lr * grad_norms[0::2] * (1.0 if scale is None else scale)
            xp.axpy_(self.params, grads, -spec.lr)
        elif update:
            updates = self.optimizer.updates(xp, grads)
            if probe:
                update_norms = xp.norms(updates[0::2])
            xp.add_(self.params, updates)
        if not probe:
            return StepResult(loss, output, labels, None, None)
        if update_norms is None:  # no update this step
            update_norms = 0.0 * weight_norms
        norms = {"grad_w": grad_norms[0::2], "grad_b": grad_norms[1::2],
                 "weight": weight_norms, "update": update_norms}
        data = probes.combine(xp, [(size, part) for _, size, _, part in passes], n)
        return StepResult(loss, output, labels, data, norms)
