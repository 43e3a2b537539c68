"""The NumPy namespace: host arrays."""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as numpy_standard
import numpy as np

from ..model.special import erf
from .base import ArrayNamespace, norm_window


class NumpyXP(ArrayNamespace):
    """NumPy arrays in host memory."""

    def __init__(self, std: Any = numpy_standard):
        super().__init__(std)
        self.erf = erf

    @staticmethod
    def sigmoid(x):
        e = np.exp(-np.abs(x))  # exp of a non-positive number only
        return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)

    @staticmethod
    def softplus(x):
        return np.logaddexp(0.0, x).astype(x.dtype, copy=False)

    # --- the pieces of safe_norm, and norms of many arrays -------------------------------
    def flat_float(self, x):
        return np.asarray(x).reshape(-1)

    def dot(self, a, b) -> float:
        return float(np.dot(a, b))

    def absmax(self, v) -> float:
        return float(np.max(np.abs(v))) if v.size else 0.0

    def numpy_dtype(self, v) -> np.dtype:
        return v.dtype

    def norms(self, arrays) -> np.ndarray:
        return np.array([self.safe_norm(a) for a in arrays], dtype=np.float64)

    def row_norms(self, stacked: np.ndarray) -> np.ndarray:
        """(L, ...) -> (L,) float64: one pass for all rows, the rule of safe_norm."""
        flat = stacked.reshape(stacked.shape[0], -1)
        sq = np.einsum("li,li->l", flat, flat).astype(np.float64)
        out = np.sqrt(sq)
        lo, hi = norm_window(flat.dtype)
        for i in np.flatnonzero(~((lo < sq) & (sq < hi))):  # under- or overflowed
            out[i] = self.safe_norm(flat[i])
        return out

    # --- probes ---------------------------------------------------------------------------
    def alive_units(self, x):
        """Per unit (last axis): does any example have a nonzero (or NaN) value?"""
        return np.any(x, axis=0)

    def stacked_alive(self, stacked):
        return np.any(stacked, axis=1)

    def rows(self, x, n, copy):
        return x[:n].copy() if copy else x[:n]

    def host_memory(self, x) -> bool:
        return True

    def as_numpy(self, x):
        return np.asarray(x)

    def from_numpy(self, x):
        return x

    def as_dtype(self, x, like):
        return x.astype(like.dtype)

    def host(self, x) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def to_float(self, x):
        return np.asarray(x, dtype=np.float64)

    def to_single(self, x):
        """float32 or wider, as it is (histograms need no more)."""
        return x

    def to_int(self, x):
        return x.astype(np.int64)

    def var_mean(self, x, axis):
        """(variance, mean) over axis, the variance about the mean (two passes)."""
        return np.var(x, axis=axis), np.mean(x, axis=axis)

    def bincount(self, idx, length):
        return np.bincount(idx.ravel().astype(np.int64), minlength=length)[:length]

    def contiguous(self, x):
        return np.ascontiguousarray(x)

    def nbytes(self, x) -> int:
        return x.nbytes

    def arange(self, n, like):
        return np.arange(n)

    def index(self, values, like):
        return np.asarray(values)

    # --- updates ----------------------------------------------------------------------------
    def axpy_(self, targets, values, alpha):
        """targets += alpha · values, in place (values are scratch: they are scaled)."""
        for t, v in zip(targets, values, strict=True):
            v *= alpha
            t += v

    def add_(self, targets, values):
        for t, v in zip(targets, values, strict=True):
            t += v

    def scaled(self, arrays, factor):
        return [a * factor for a in arrays]

    # --- the Jacobian spectrum ----------------------------------------------------------------
    def eye(self, n, like):
        return np.eye(n, dtype=like.dtype)

    def svdvals(self, m):
        return np.linalg.svd(m, compute_uv=False)

    def qr(self, m):
        return np.linalg.qr(m)[0]

    def randn(self, shape, like, seed):
        return np.random.default_rng(seed).standard_normal(shape).astype(like.dtype)


NUMPY = NumpyXP()

__all__ = ["NUMPY", "NumpyXP"]
