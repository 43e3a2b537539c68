"""The training step on PyTorch, CPU or CUDA, with a backward pass of its own.

The network is a plain stack of layers, so its backward is a short loop over them
(the same fused kernels autograd would launch: addmm, mm, tanh_backward, ...).
Owning the loop is what makes the probes nearly free: each δ(l) and each layer's
gradient is in hand, in cache, the moment it exists (CPU: reduced right there;
GPU: kept and reduced for all layers at once, with no host sync per layer).
Tests check it against torch.autograd in float64 and against the NumPy tape.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .base import Engine, Pass
from .xp import TorchXP

LAYERNORM_EPS = 1e-5


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
        self._act = _torch_activation(torch, spec.activation)
        self._act_backward = _torch_activation_backward(torch, spec.activation)
        self.inline_probes = self.device.type != "cuda"
        if self.device.type == "cpu" and spec.dtype in ("float32", "float64"):
            # zero-copy NumPy views; the engine's own tensors never require grad
            self.probe_view = torch.Tensor.numpy
            self.probe_dtype = np.dtype(spec.dtype)

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
    def _layer_forward(self, a, index):
        """a(l-1) -> (saved for the backward, z, a(l))."""
        spec, torch = self.spec, self.torch
        W, b = self.params[2 * index], self.params[2 * index + 1]
        z = torch.addmm(b, a, W.T)
        inv = None
        if spec.norm == "layernorm":
            centred = z - z.mean(-1, keepdim=True)
            inv = torch.rsqrt(centred.square().mean(-1, keepdim=True) + LAYERNORM_EPS)
            u = centred * inv
        else:
            u = z
        y = self._act(u)
        residual = spec.is_residual_layer(index)
        a_next = torch.add(a, y, alpha=spec.alpha) if residual else y  # a(l-1) + α·σ(z(l))
        return (a, u, inv, y, residual), z, a_next

    def _layer_backward(self, g_a, saved, index, grads, probe):
        """∂loss/∂a(l) -> ∂loss/∂a(l-1); fills the layer's gradients."""
        spec, torch = self.spec, self.torch
        a_prev, u, inv, y, residual = saved
        g_y = g_a * spec.alpha if residual else g_a
        g_z = self._act_backward(g_y, u, y)
        if inv is not None:  # layernorm: ∂z = (∂u − mean ∂u − u·mean(∂u ⊙ u)) / s
            g_z = inv * (g_z - g_z.mean(-1, keepdim=True)
                         - u * (g_z * u).mean(-1, keepdim=True))
        W = self.params[2 * index]
        gW, gb = torch.mm(g_z.T, a_prev), g_z.sum(0)
        grads[2 * index], grads[2 * index + 1] = gW, gb
        if probe is not None:
            probe.backward(index, g_z)
            probe.params(index, gW, gb, W)
        if index == 0:
            return None  # the data need no gradient
        g_prev = torch.mm(g_z, W)
        return g_prev.add_(g_a) if residual else g_prev

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

    def forward_backward(self, x, labels, targets, probe) -> Pass:
        if self.device.type != "cuda":
            return self._forward_backward(x, labels, targets, probe)
        from .precision import cuda_matmul_precision

        with cuda_matmul_precision(self.torch, self.tf32):  # the flag is process-wide
            return self._forward_backward(x, labels, targets, probe)

    def full_precision(self):
        if self.device.type != "cuda":
            return super().full_precision()
        from .precision import cuda_matmul_precision

        return cuda_matmul_precision(self.torch, False)

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
                    kept, z, a = self._layer_forward(a, index)
                    if probe is not None:
                        probe.forward(index, z, a)
                    if not checkpointing:
                        saved[index] = kept
            W_out = self.params[-2]
            out = torch.addmm(self.params[-1], a, W_out.T)
            loss, g = self._loss_and_grad(out, labels, targets)
            grads: list = [None] * len(self.params)
            grads[-2], grads[-1] = torch.mm(g.T, a), g.sum(0)
            if probe is not None:
                probe.forward(depth, out, out)
                probe.backward(depth, g)
                probe.params(depth, grads[-2], grads[-1], W_out)
            g_a = torch.mm(g, W_out)
            for (lo, hi), start in zip(reversed(segments), reversed(starts), strict=True):
                if checkpointing:  # recompute the segment, then pull back through it
                    a = start
                    for index in range(lo, hi):
                        saved[index], _, a = self._layer_forward(a, index)
                for index in range(hi - 1, lo - 1, -1):
                    self.check_cancel()
                    g_a = self._layer_backward(g_a, saved.pop(index), index, grads, probe)
        return Pass(loss, grads, out)

    def apply(self, updates: list) -> None:
        self.xp.add_(self.params, updates)


@functools.cache
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: only a speed matter
        return None
    return ThreadpoolController()


def _torch_activation(torch, name: str):
    F = torch.nn.functional
    return {
        "linear": lambda x: x, "relu": F.relu, "leaky_relu": lambda x: F.leaky_relu(x, 0.01),
        "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "silu": F.silu,
        "softplus": F.softplus, "elu": F.elu, "selu": F.selu,
    }[name]


def _torch_activation_backward(torch, name: str):
    """(∂y, u, y=φ(u)) -> ∂u with the kernels autograd uses for each activation."""
    from ..model.activations import LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE

    aten = torch.ops.aten
    return {
        "linear": lambda g, u, y: g,
        "relu": lambda g, u, y: aten.threshold_backward(g, y, 0),
        "leaky_relu": lambda g, u, y: aten.leaky_relu_backward(g, u, LEAKY_SLOPE, False),
        "tanh": lambda g, u, y: aten.tanh_backward(g, y),
        "sigmoid": lambda g, u, y: aten.sigmoid_backward(g, y),
        "gelu": lambda g, u, y: aten.gelu_backward(g, u),
        "silu": lambda g, u, y: aten.silu_backward(g, u),
        "softplus": lambda g, u, y: aten.softplus_backward(g, u, 1.0, 20.0),
        "elu": lambda g, u, y: aten.elu_backward(g, 1.0, 1.0, 1.0, False, u),
        "selu": lambda g, u, y: aten.elu_backward(g, SELU_ALPHA, SELU_SCALE, 1.0, False, u),
    }[name]
