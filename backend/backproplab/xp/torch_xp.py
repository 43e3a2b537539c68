"""The torch namespace: tensors on one device; reductions stay there until `host`.

torch is handed in (TorchXP(torch)), so importing this module does not import it."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ArrayNamespace, norm_window


class TorchStandard:
    """The Array API standard functions the numeric code uses, as torch's own calls
    (dim for axis, amin/amax, cat, clamp). Measured against array-api-compat's torch
    namespace on the probe path (benchmarks/probe_overhead.py --standard), whose
    wrappers cost 6–13% more per probed step on a CPU: so the standard part of the
    torch namespace is written here, while NumPy's comes from array-api-compat."""

    def __init__(self, torch: Any):
        for fn in ("abs", "sqrt", "exp", "expm1", "tanh", "log10", "floor", "isfinite",
                   "ones_like", "where"):
            setattr(self, fn, getattr(torch, fn))
        self.torch = torch

    def maximum(self, x, y):
        return self.torch.clamp(x, min=y) if isinstance(y, float) else self.torch.maximum(x, y)

    def minimum(self, x, y):
        return self.torch.clamp(x, max=y) if isinstance(y, float) else self.torch.minimum(x, y)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return x.mean() if axis is None else x.mean(dim=axis, keepdim=keepdims)

    @staticmethod
    def min(x, axis=None):
        return x.amin() if axis is None else x.amin(dim=axis)

    @staticmethod
    def max(x, axis=None):
        return x.amax() if axis is None else x.amax(dim=axis)

    def stack(self, xs, axis=0):
        return self.torch.stack(list(xs), dim=axis)

    def concat(self, xs, axis=0):
        return self.torch.cat(list(xs), dim=axis)

    def clip(self, x, lo, hi):
        return self.torch.clamp(x, lo, hi)


class TorchXP(ArrayNamespace):
    """torch tensors on one device (CPU, CUDA, ...). `std`: another standard namespace
    (array_api_compat.torch, for the benchmark)."""

    def __init__(self, torch: Any, std: Any = None):
        super().__init__(TorchStandard(torch) if std is None else std)
        self.torch = torch
        self.erf, self.sigmoid = torch.special.erf, torch.sigmoid
        self.softplus = torch.nn.functional.softplus

    # --- the pieces of safe_norm, and norms of many tensors ------------------------------
    def flat_float(self, x):
        v = x.reshape(-1)
        return v if v.dtype in (self.torch.float32, self.torch.float64) else v.float()

    def dot(self, a, b) -> float:
        return float(self.torch.dot(a, b))

    def absmax(self, v) -> float:
        return float(v.abs().amax()) if v.numel() else 0.0

    def numpy_dtype(self, v) -> np.dtype:
        return np.dtype(np.float64 if v.dtype == self.torch.float64 else np.float32)

    def norms(self, tensors):
        """Norms of many tensors, float64, with no host sync below float64: the squares
        of float32 (or bfloat16) values are summed in float64, where none can leave the
        range. float64 norms outside the window are retaken by safe_norm."""
        torch = self.torch
        tensors = list(tensors)
        wide = tensors[0].dtype == torch.float64
        out = torch.stack(torch._foreach_norm(tensors, 2, dtype=None if wide else torch.float64))
        if wide:
            lo, hi = (v**0.5 for v in norm_window(np.float64))
            host = out.cpu().numpy()
            for i in np.flatnonzero(~((host > lo) & (host < hi))):
                out[i] = self.safe_norm(tensors[i])
        return out

    def row_norms(self, stacked):
        """(L, ...) -> (L,) float64 norms in a few kernels over all rows at once, with no
        host sync: float64 rows outside the window are rescaled by their largest entry."""
        torch = self.torch
        flat = stacked.reshape(stacked.shape[0], -1)
        if flat.dtype != torch.float64:
            return torch.linalg.vector_norm(flat, dim=1, dtype=torch.float64)
        largest = flat.abs().amax(1)
        ok = torch.isfinite(largest) & (largest > 0)
        safe = torch.where(ok, largest, torch.ones_like(largest))
        return torch.where(ok, safe * torch.linalg.vector_norm(flat / safe[:, None], dim=1),
                           largest)

    # --- probes ---------------------------------------------------------------------------
    def alive_units(self, x):
        return self.torch.amax(x.abs(), 0) != 0  # NaN counts as alive, as any() has it

    def stacked_alive(self, stacked):
        return self.torch.any(stacked, 1)

    def rows(self, x, n, copy):
        return x[:n].clone() if copy else x[:n]

    def host_memory(self, x) -> bool:
        return x.device.type == "cpu"

    def as_numpy(self, x):
        """A NumPy view of a CPU tensor (bfloat16, which NumPy lacks, as float32)."""
        if x.requires_grad:
            x = x.detach()
        if x.dtype in (self.torch.bfloat16, self.torch.float16):
            x = x.float()
        return x.numpy()

    def from_numpy(self, x):
        return self.torch.from_numpy(np.ascontiguousarray(x))

    def as_dtype(self, x, like):
        return x.to(like.dtype)

    def host(self, x) -> np.ndarray:
        return x.detach().to("cpu", self.torch.float64).numpy()

    def to_float(self, x):
        return x.to(self.torch.float64) if x.device.type != "mps" else x.float()

    def to_single(self, x):
        return x.float() if x.dtype in (self.torch.bfloat16, self.torch.float16) else x

    def to_int(self, x):
        return x.to(self.torch.int64)

    def var_mean(self, x, axis):
        return self.torch.var_mean(x, dim=axis, correction=0)

    def bincount(self, idx, length):
        """Counts of idx (all in [0, length)) with no host sync: torch.bincount on a GPU
        reads the largest index back to size its output; this adds into a zero vector."""
        torch = self.torch
        flat = idx.reshape(-1)
        counts = torch.zeros(length, dtype=torch.int64, device=flat.device)
        return counts.index_add_(0, flat, torch.ones((), dtype=torch.int64,
                                                     device=flat.device).expand(flat.shape))

    def contiguous(self, x):
        return x.contiguous()

    def nbytes(self, x) -> int:
        return x.numel() * x.element_size()

    def arange(self, n, like):
        return self.torch.arange(n, device=like.device)

    def index(self, values, like):
        # a copy: the values may be read-only
        return self.torch.as_tensor(np.array(values), device=like.device)

    # --- updates ----------------------------------------------------------------------------
    def axpy_(self, targets, values, alpha):
        with self.torch.no_grad():
            self.torch._foreach_add_(list(targets), list(values), alpha=alpha)

    def add_(self, targets, values):
        with self.torch.no_grad():
            self.torch._foreach_add_(list(targets), list(values))

    def scaled(self, tensors, factor):
        return list(self.torch._foreach_mul(list(tensors), factor))  # one fused launch

    # --- the Jacobian spectrum ----------------------------------------------------------------
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
