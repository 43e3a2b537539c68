"""The training step on PyTorch, CPU or CUDA.

δ(l) comes from the same autograd call that computes the parameter gradients
(`torch.autograd.grad(loss, params + zs)`): no hooks and no host sync per
layer; the probes then reduce all hidden layers in a few batched kernels.
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
                      "bfloat16": torch.bfloat16}[spec.dtype]
        self.xp = TorchXP(torch)
        super().__init__(spec)
        self._act = _torch_activation(torch, spec.activation)

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

    def _hidden(self, a, W, b, index, zs, acts):
        spec = self.spec
        self.check_cancel()
        z = a @ W.T + b
        zs.append(z)
        u = z
        if spec.norm == "layernorm":
            centred = z - z.mean(-1, keepdim=True)
            u = centred / (centred.square().mean(-1, keepdim=True) + LAYERNORM_EPS).sqrt()
        y = self._act(u)
        a = a + spec.alpha * y if spec.is_residual_layer(index) else y
        acts.append(a)
        return a

    def forward_backward(self, x, labels, targets, probe: bool) -> Pass:
        torch, spec = self.torch, self.spec
        params = [p.detach().requires_grad_(True) for p in self.params]
        zs: list = []
        acts: list = []
        a = x
        hidden = spec.depth
        if spec.segments > 1:
            a = self._checkpointed(a, params, zs, acts)
        else:
            for index in range(hidden):
                a = self._hidden(a, params[2 * index], params[2 * index + 1], index, zs, acts)
        out = a @ params[-2].T + params[-1]
        zs.append(out)
        acts.append(out)
        if spec.loss == "mse":
            loss = torch.mean((out - targets) ** 2)
        else:
            loss = torch.nn.functional.cross_entropy(
                out, torch.as_tensor(labels, device=self.device))
        if not probe:
            grads = torch.autograd.grad(loss, params)
            return Pass(loss.detach(), list(grads), out.detach())
        if spec.segments > 1:
            grads = torch.autograd.grad(loss, params + [out])
            cts = [self._hooked[i] for i in range(hidden)] + [grads[-1]]
        else:
            grads = torch.autograd.grad(loss, params + zs)
            cts = list(grads[len(params):])
        return Pass(loss.detach(), list(grads[:len(params)]), out.detach(),
                    zs=[z.detach() for z in zs], acts=[a.detach() for a in acts],
                    z_cotangents=cts)

    def _checkpointed(self, a, params, zs, acts):
        """√depth segments with torch.utils.checkpoint; δ(l) inside them through
        tensor hooks, which fire during the recomputing backward pass."""
        from torch.utils.checkpoint import checkpoint

        self._hooked = {}
        depth, segments = self.spec.depth, self.spec.segments
        bounds = [round(k * depth / segments) for k in range(segments + 1)]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            def segment(h, *ps, lo=lo, hi=hi):
                for k, index in enumerate(range(lo, hi)):
                    inner_z: list = []
                    inner_a: list = []
                    h = self._hidden(h, ps[2 * k], ps[2 * k + 1], index, inner_z, inner_a)
                    if inner_z[0].requires_grad:
                        inner_z[0].register_hook(
                            lambda g, index=index: self._hooked.__setitem__(index, g))
                    self._values[index] = (inner_z[0].detach(), inner_a[0].detach())
                return h

            self._values = getattr(self, "_values", {})
            a = checkpoint(segment, a, *params[2 * lo:2 * hi], use_reentrant=False)
        for index in range(depth):
            z, act = self._values[index]
            zs.append(z)
            acts.append(act)
        return a

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
