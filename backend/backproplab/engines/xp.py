"""Two array namespaces with one vocabulary, so the probes, the activations and
the optimizers are written once for NumPy and for torch (on any device)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..model.special import erf


class NumpyXP:
    """NumPy arrays on the host."""

    name = "numpy"
    tanh, exp, expm1, abs, sqrt = np.tanh, np.exp, np.expm1, np.abs, np.sqrt
    maximum, minimum, where, isfinite = np.maximum, np.minimum, np.where, np.isfinite
    log10, floor, ones_like, zeros_like = np.log10, np.floor, np.ones_like, np.zeros_like
    erf = staticmethod(erf)

    @staticmethod
    def sigmoid(x):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)

    @staticmethod
    def softplus(x):
        return np.logaddexp(0.0, x).astype(x.dtype, copy=False)

    @staticmethod
    def sum(x, axis=None):
        return np.sum(x, axis=axis)

    @staticmethod
    def mean(x, axis=None):
        return np.mean(x, axis=axis)

    @staticmethod
    def amin(x, axis=None):
        return np.min(x, axis=axis)

    @staticmethod
    def amax(x, axis=None):
        return np.max(x, axis=axis)

    @staticmethod
    def all(x, axis=None):
        return np.all(x, axis=axis)

    @staticmethod
    def stack(xs, axis=0):
        return np.stack(xs, axis=axis)

    @staticmethod
    def concat(xs, axis=0):
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def to_float(x):
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def clamp(x, lo, hi):
        return np.clip(x, lo, hi)

    @staticmethod
    def to_single(x):
        """float32 or wider, as it is (histograms need no more)."""
        return x

    @staticmethod
    def bincount(idx, length):
        return np.bincount(idx.ravel().astype(np.int64), minlength=length)[:length]

    @staticmethod
    def to_int(x):
        return x.astype(np.int64)

    @staticmethod
    def norms(tensors):
        # one BLAS dot per tensor, no temporaries; inf and nan pass through
        squares = np.array([np.dot(t.ravel(), t.ravel()) for t in tensors], dtype=np.float64)
        return np.sqrt(squares)

    @staticmethod
    def host(x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    @staticmethod
    def scaled(tensors, factor):
        return [t * factor for t in tensors]

    @staticmethod
    def add_(targets, values):
        for t, v in zip(targets, values, strict=True):
            t += v

    @staticmethod
    def delta_stats(deltas):
        """Per layer, one pass each: Σ_n ‖δ_n‖² and the number of units with any δ ≠ 0."""
        sq = np.array([np.vdot(d.ravel(), d.ravel()) for d in deltas], dtype=np.float64)
        alive = np.array([np.count_nonzero(np.count_nonzero(d, axis=0)) for d in deltas],
                         dtype=np.float64)
        # float32 sums that overflowed stay inf, as the values they summarize
        return sq, alive

    @staticmethod
    def arange(n, like):
        return np.arange(n)

    @staticmethod
    def index(values, like):
        return np.asarray(values)

    @staticmethod
    def matmul(a, b):
        return a @ b

    @staticmethod
    def eye(n, like):
        return np.eye(n, dtype=like.dtype)

    @staticmethod
    def svdvals(m):
        return np.linalg.svd(m, compute_uv=False)

    @staticmethod
    def qr(m):
        return np.linalg.qr(m)[0]

    @staticmethod
    def randn(shape, like, seed):
        return np.random.default_rng(seed).standard_normal(shape).astype(like.dtype)


class TorchXP:
    """torch tensors on one device; reductions stay on the device until `host`."""

    name = "torch"

    def __init__(self, torch: Any):
        import torch.nn.functional as F

        self.torch = torch
        self.tanh, self.exp, self.expm1 = torch.tanh, torch.exp, torch.expm1
        self.abs, self.sqrt, self.log10 = torch.abs, torch.sqrt, torch.log10
        self.isfinite, self.floor = torch.isfinite, torch.floor
        self.ones_like, self.zeros_like = torch.ones_like, torch.zeros_like
        self.erf, self.sigmoid, self.softplus = torch.special.erf, torch.sigmoid, F.softplus

    def maximum(self, x, y):
        return self.torch.clamp(x, min=y) if isinstance(y, (int, float)) else \
            self.torch.maximum(x, y)

    def minimum(self, x, y):
        return self.torch.clamp(x, max=y) if isinstance(y, (int, float)) else \
            self.torch.minimum(x, y)

    def where(self, cond, a, b):
        return self.torch.where(cond, a, b)

    def sum(self, x, axis=None):
        return x.sum() if axis is None else x.sum(dim=axis)

    def mean(self, x, axis=None):
        return x.mean() if axis is None else x.mean(dim=axis)

    def amin(self, x, axis=None):
        return x.amin() if axis is None else x.amin(dim=axis)

    def amax(self, x, axis=None):
        return x.amax() if axis is None else x.amax(dim=axis)

    def all(self, x, axis=None):
        return x.all() if axis is None else x.all(dim=axis)

    def stack(self, xs, axis=0):
        return self.torch.stack(list(xs), dim=axis)

    def concat(self, xs, axis=0):
        return self.torch.cat(list(xs), dim=axis)

    def to_float(self, x):
        return x.to(self.torch.float64) if x.device.type != "mps" else x.float()

    def clamp(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)

    def to_single(self, x):
        return x.float() if x.dtype in (self.torch.bfloat16, self.torch.float16) else x

    def bincount(self, idx, length):
        return self.torch.bincount(idx.reshape(-1), minlength=length)[:length]

    def to_int(self, x):
        return x.to(self.torch.int64)

    def norms(self, tensors):
        return self.torch.stack(self.torch._foreach_norm(list(tensors))).to(self.torch.float64)

    def host(self, x) -> np.ndarray:
        return x.detach().to("cpu", self.torch.float64).numpy()

    def scaled(self, tensors, factor):
        return list(self.torch._foreach_mul(list(tensors), factor))  # one fused launch

    def add_(self, targets, values):
        with self.torch.no_grad():
            self.torch._foreach_add_(list(targets), list(values))

    def delta_stats(self, deltas):
        """Per layer: Σ_n ‖δ_n‖² and the number of units with any δ ≠ 0 (on the device)."""
        torch = self.torch
        if deltas[0].device.type == "cuda":  # few big kernels over all equal-shaped layers
            hidden = torch.stack(deltas[:-1])
            sq = torch.cat([torch.linalg.vector_norm(hidden, dim=(1, 2)) ** 2,
                            torch.linalg.vector_norm(deltas[-1])[None] ** 2])
            alive = torch.cat([(torch.count_nonzero(hidden, dim=1) > 0).sum(1),
                               (torch.count_nonzero(deltas[-1], dim=0) > 0).sum()[None]])
            return sq.to(torch.float64), alive.to(torch.float64)
        sq = torch.stack([torch.dot(d.reshape(-1), d.reshape(-1)) for d in deltas])
        alive = torch.stack([(torch.count_nonzero(d, dim=0) > 0).sum() for d in deltas])
        return sq.to(torch.float64), alive.to(torch.float64)

    def arange(self, n, like):
        return self.torch.arange(n, device=like.device)

    def index(self, values, like):
        return self.torch.as_tensor(np.asarray(values), device=like.device)

    def matmul(self, a, b):
        return a @ b

    def eye(self, n, like):
        return self.torch.eye(n, dtype=like.dtype, device=like.device)

    def svdvals(self, m):
        return self.torch.linalg.svdvals(m.to(self.torch.float64)
                                         if m.dtype == self.torch.bfloat16 else m)

    def qr(self, m):
        return self.torch.linalg.qr(m)[0]

    def randn(self, shape, like, seed):
        g = np.random.default_rng(seed).standard_normal(shape)
        return self.torch.tensor(g, dtype=like.dtype, device=like.device)
