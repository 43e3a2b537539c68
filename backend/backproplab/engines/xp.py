"""Two array namespaces with one vocabulary, so the probes, the activations and
the optimizers are written once for NumPy and for torch (on any device)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from ..model.special import erf


@functools.cache
def norm_window(dtype: Any) -> tuple[float, float]:
    """Sums of squares strictly inside this window are exact enough as they are;
    outside it some squares may have under- or overflowed, so the norm is retaken
    scaled by the largest entry (vanishing δ of 1e-30 in float32 is data, not 0)."""
    info = np.finfo(dtype)
    return float(info.tiny) * 1e8, float(info.max) * 1e-8


def scaled_norm(largest: float, rescaled_norm: Any) -> float:
    """‖v‖ from max|v| and a callable giving ‖v / max|v|‖ (0, NaN and ±Inf pass)."""
    if not largest > 0 or math.isinf(largest):
        return largest
    return largest * rescaled_norm(largest)


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
    def contiguous(x):
        return np.ascontiguousarray(x)

    @staticmethod
    def nbytes(x) -> int:
        return x.nbytes

    @staticmethod
    def var_mean(x, axis):
        """(variance, mean) over axis, the variance about the mean (two passes)."""
        return np.var(x, axis=axis), np.mean(x, axis=axis)

    @staticmethod
    def to_int(x):
        return x.astype(np.int64)

    @staticmethod
    def safe_norm(x) -> float:
        """‖x‖ as a float: one BLAS dot, and a rescaled pass only when the sum of
        squares left the window where it cannot have under- or overflowed."""
        v = x.reshape(-1)
        sq = float(np.dot(v, v))
        lo, hi = norm_window(v.dtype)
        if lo < sq < hi:
            return math.sqrt(sq)
        largest = float(np.max(np.abs(v))) if v.size else 0.0
        return scaled_norm(largest, lambda m: math.sqrt(float(np.dot(v / m, v / m))))

    @classmethod
    def norms(cls, tensors):
        return np.array([cls.safe_norm(t) for t in tensors], dtype=np.float64)

    @classmethod
    def stacked_norms(cls, stacked):
        return cls.norms(list(stacked))

    @staticmethod
    def alive_units(x):
        """Per unit (last axis): does any example have a nonzero (or NaN) value?"""
        return np.any(x, axis=0)

    @staticmethod
    def stacked_alive(stacked):
        return np.any(stacked, axis=1)

    @staticmethod
    def rows(x, n, copy):
        return x[:n].copy() if copy else x[:n]

    @staticmethod
    def from_host(values, like):
        return np.asarray(values, dtype=np.float64)

    @staticmethod
    def host_resident(x) -> bool:
        return True

    @staticmethod
    def as_numpy(x):
        return np.asarray(x)

    @staticmethod
    def as_dtype(x, like):
        return x.astype(like.dtype)

    @staticmethod
    def axpy_(targets, values, alpha):
        """targets += alpha · values, in place (values are scratch: they are scaled)."""
        for t, v in zip(targets, values, strict=True):
            v *= alpha
            t += v

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
        """Counts of idx (all in [0, length)) with no host sync: torch.bincount on a GPU
        reads the largest index back to size its output; this adds into a zero vector."""
        torch = self.torch
        flat = idx.reshape(-1)
        counts = torch.zeros(length, dtype=torch.int64, device=flat.device)
        return counts.index_add_(0, flat, torch.ones((), dtype=torch.int64,
                                                     device=flat.device).expand(flat.shape))

    def var_mean(self, x, axis):
        return self.torch.var_mean(x, dim=axis, correction=0)

    def contiguous(self, x):
        return x.contiguous()

    def nbytes(self, x) -> int:
        return x.numel() * x.element_size()

    def to_int(self, x):
        return x.to(self.torch.int64)

    def safe_norm(self, x) -> float:
        """‖x‖ as a host float (a sync: for inline probes on the CPU)."""
        torch = self.torch
        v = x.reshape(-1)
        if v.dtype not in (torch.float32, torch.float64):
            v = v.float()
        sq = float(torch.dot(v, v))
        lo, hi = norm_window(v.dtype == torch.float64 and np.float64 or np.float32)
        if lo < sq < hi:
            return math.sqrt(sq)
        largest = float(v.abs().amax()) if v.numel() else 0.0
        return scaled_norm(largest, lambda m: float(torch.linalg.vector_norm(v / m)))

    def norms(self, tensors):
        """Norms of many tensors, float64, without a host sync for float32/bfloat16
        (summed in float64: no square of a float32 under- or overflows there)."""
        torch = self.torch
        tensors = list(tensors)
        wide = tensors[0].dtype == torch.float64
        out = torch.stack(torch._foreach_norm(tensors, 2, dtype=None if wide else torch.float64))
        if wide:  # float64 squares can still leave the range: retake those scaled
            lo, hi = norm_window(np.float64)
            host = out.cpu().numpy()
            for i in np.flatnonzero(~((host > math.sqrt(lo)) & (host < math.sqrt(hi)))):
                out[i] = self.safe_norm(tensors[i])
        return out

    def stacked_norms(self, stacked):
        """(L, ...) -> (L,) float64 norms in a few kernels over all layers at once."""
        torch = self.torch
        flat = stacked.reshape(stacked.shape[0], -1)
        if flat.dtype != torch.float64:
            return torch.linalg.vector_norm(flat, dim=1, dtype=torch.float64)
        largest = flat.abs().amax(1)
        ok = torch.isfinite(largest) & (largest > 0)
        safe = torch.where(ok, largest, torch.ones_like(largest))
        return torch.where(ok, safe * torch.linalg.vector_norm(flat / safe[:, None], dim=1),
                           largest)

    def alive_units(self, x):
        return self.torch.amax(x.abs(), 0) != 0  # NaN counts as alive, as any() has it

    def stacked_alive(self, stacked):
        return self.torch.any(stacked, 1)

    def rows(self, x, n, copy):
        return x[:n].clone() if copy else x[:n]

    def from_host(self, values, like):
        return self.torch.tensor(values, dtype=self.torch.float64, device=like.device)

    def host_resident(self, x) -> bool:
        return x.device.type == "cpu"

    def from_numpy(self, x):
        return self.torch.from_numpy(np.ascontiguousarray(x))

    def as_numpy(self, x):
        """A NumPy view of a CPU tensor (bfloat16, which NumPy lacks, as float32)."""
        if x.requires_grad:
            x = x.detach()
        if x.dtype in (self.torch.bfloat16, self.torch.float16):
            x = x.float()
        return x.numpy()

    def as_dtype(self, x, like):
        return x.to(like.dtype)

    def axpy_(self, targets, values, alpha):
        with self.torch.no_grad():
            self.torch._foreach_add_(list(targets), list(values), alpha=alpha)

    def host(self, x) -> np.ndarray:
        return x.detach().to("cpu", self.torch.float64).numpy()

    def scaled(self, tensors, factor):
        return list(self.torch._foreach_mul(list(tensors), factor))  # one fused launch

    def add_(self, targets, values):
        with self.torch.no_grad():
            self.torch._foreach_add_(list(targets), list(values))

    def arange(self, n, like):
        return self.torch.arange(n, device=like.device)

    def index(self, values, like):
        # a copy: the values may be read-only
        return self.torch.as_tensor(np.array(values), device=like.device)

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
