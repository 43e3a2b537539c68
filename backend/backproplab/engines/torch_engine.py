"""The training step on PyTorch, CPU or CUDA, with a backward pass of its own.

The network is a plain stack of layers, so its backward is a short loop over them
(the same fused kernels autograd would launch: addmm, mm, tanh_backward, ...).
Owning the loop is what makes the probes nearly free: each δ(l) and each layer's
gradient is in hand, in cache, the moment it exists (CPU: reduced right there;
GPU: kept and reduced for all layers at once, with no host sync per layer).
Tests check it against torch.autograd in float64 and against the NumPy tape.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from ..model import network
from ..xp import TorchXP
from ..xp.precision import cuda_matmul_precision
from .base import Engine, Pass
from .probes import ProbeMode


def torch_kernels(torch: Any, xp: TorchXP, net: list[network.Layer]) -> network.Kernels:
    """The torch kernels of a layer: the fused ones autograd would launch (addmm, mm,
    tanh_backward, ...), taken from the activation registry."""
    acts = {layer.activation.name: layer.activation for layer in net}
    forward = {name: a.torch_forward(torch) for name, a in acts.items()}
    backward = {name: a.torch_backward(torch) for name, a in acts.items()}
    return network.Kernels(
        xp=xp,
        dense=lambda a, W, b, layer: torch.addmm(b, a, W.T),
        activation=lambda u, layer: forward[layer.activation.name](u),
        activation_vjp=lambda g, u, y, layer: backward[layer.activation.name](g, u, y),
        matmul=torch.mm,
        param_grads=lambda delta, a: (torch.mm(delta.T, a), delta.sum(0)),
        residual=lambda a, y, alpha: torch.add(a, y, alpha=alpha),
        accumulate=lambda g, h: g.add_(h),
    )


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def cuda_available() -> bool:
    if not torch_available():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ValueError("device 'cuda' was asked for, but no CUDA device is available here")
    return device


class TorchEngine(Engine):
    def __init__(self, spec, threads: int | None = None):
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(resolve_device(spec.device))
        self.dtype = {"float32": torch.float32, "float64": torch.float64,
                      "bfloat16": torch.bfloat16, "tf32": torch.float32}[spec.dtype]
        self.tf32 = spec.dtype == "tf32"  # float32 tensors, TF32 matmuls (CUDA only)
        if self.tf32 and self.device.type != "cuda":
            raise ValueError("dtype 'tf32' needs a CUDA device: TF32 is a mode of NVIDIA "
                             "GPUs' matmuls (use float32 on the CPU)")
        self.xp = TorchXP(torch)
        super().__init__(spec)
        self.net = network.layers(spec)
        self.kernels = torch_kernels(torch, self.xp, self.net)
        # host memory that NumPy can view (float32, float64): reduced inline, in cache;
        # anything else (a GPU, bfloat16) is kept and reduced for all layers at once
        host = self.device.type == "cpu" and spec.dtype in ("float32", "float64")
        self.probe_mode = ProbeMode.HOST if host else ProbeMode.DEVICE

    def make_batch(self, step: int) -> tuple:
        # the data are drawn with NumPy (identical for both engines); one BLAS thread for
        # that, so OpenBLAS workers left spinning do not fight torch's threads for the cores
        controller = _blas_controller()
        if controller is None:
            return super().make_batch(step)
        with controller.limit(limits=1, user_api="blas"):
            return super().make_batch(step)

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"cuda ({self.torch.cuda.get_device_name(self.device)})"
        return "cpu (torch)"

    def to_device(self, array: np.ndarray) -> Any:
        return self.torch.as_tensor(np.asarray(array), device=self.device).to(self.dtype)

    # --- forward and backward, by hand ------------------------------------------------
    def _layer_forward(self, a, index) -> network.LayerValues:
        W, b = self.params[2 * index], self.params[2 * index + 1]
        return network.layer_forward(self.net[index], self.kernels, a, W, b)

    def _layer_backward(self, g_a, values, index, grads, probe):
        """∂loss/∂a(l) -> ∂loss/∂a(l-1); fills the layer's gradients."""
        layer, k = self.net[index], self.kernels
        delta = network.layer_delta(layer, k, g_a, values)
        W = self.params[2 * index]
        gW, gb = k.param_grads(delta, values.a_in)
        grads[2 * index], grads[2 * index + 1] = gW, gb
        if probe is not None:
            probe.backward(index, delta)
            probe.params(index, gW, gb, W)
        if index == 0:
            return None  # the data need no gradient
        return network.layer_input_grad(layer, k, delta, g_a, W)

    def _loss_and_grad(self, out, labels, targets):
        torch = self.torch
        if self.spec.loss == "mse":
            r = out - targets
            return (r * r).mean(), r * (2.0 / r.numel())
        logp = torch.log_softmax(out, -1)
        index = torch.as_tensor(labels, device=self.device)
        loss = -logp.gather(1, index[:, None]).mean()
        g = logp.exp()
        g[torch.arange(len(index), device=self.device), index] -= 1.0
        return loss, g / len(index)

    def _precision(self, tf32: bool) -> contextlib.AbstractContextManager:
        # the flag is process-wide: held under a lock for CUDA work (see xp.precision)
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        return cuda_matmul_precision(self.torch, tf32)

    def forward_backward(self, x, labels, targets, probe) -> Pass:
        with self._precision(self.tf32):
            return self._forward_backward(x, labels, targets, probe)

    def full_precision(self) -> contextlib.AbstractContextManager:
        return self._precision(False)

    def _forward_backward(self, x, labels, targets, probe) -> Pass:
        spec, torch = self.spec, self.torch
        depth = spec.depth
        bounds = [round(k * depth / spec.segments) for k in range(spec.segments + 1)]
        segments = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
        checkpointing = len(segments) > 1
        with torch.no_grad():
            saved: dict = {}
            starts = []  # checkpointing keeps only each segment's input
            a = x
            for lo, hi in segments:
                starts.append(a)
                for index in range(lo, hi):
                    self.check_cancel()
                    values = self._layer_forward(a, index)
                    a = values.a_out
                    if probe is not None:
                        probe.forward(index, values.z, a)
                    if not checkpointing:
                        saved[index] = values
            k, W_out = self.kernels, self.params[-2]
            out = k.dense(a, W_out, self.params[-1], self.net[-1])
            loss, g = self._loss_and_grad(out, labels, targets)
            grads: list = [None] * len(self.params)
            grads[-2], grads[-1] = k.param_grads(g, a)
            if probe is not None:
                probe.forward(depth, out, out)
                probe.backward(depth, g)
                probe.params(depth, grads[-2], grads[-1], W_out)
            g_a = k.matmul(g, W_out)
            for (lo, hi), start in zip(reversed(segments), reversed(starts), strict=True):
                if checkpointing:  # recompute the segment, then pull back through it
                    a = start
                    for index in range(lo, hi):
                        saved[index] = self._layer_forward(a, index)
                        a = saved[index].a_out
                for index in range(hi - 1, lo - 1, -1):
                    self.check_cancel()
                    g_a = self._layer_backward(g_a, saved.pop(index), index, grads, probe)
        return Pass(loss, grads, out)


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: only a speed matter
        return None
    return ThreadpoolController()
