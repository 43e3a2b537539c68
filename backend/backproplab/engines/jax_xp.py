"""jax.numpy in the array vocabulary of engines.xp, for code traced under jit.

The probes' device reductions (histograms, saturation, layernorm) and the layer
Jacobian maps are written once against an `xp`; with this namespace they trace
into the JAX engine's one XLA computation. Nothing here syncs with the host but
`host`, which the engine calls once per recorded step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf as _erf


class JaxXP:
    name = "jax"
    tanh, exp, expm1, abs, sqrt = jnp.tanh, jnp.exp, jnp.expm1, jnp.abs, jnp.sqrt
    maximum, minimum, where, isfinite = jnp.maximum, jnp.minimum, jnp.where, jnp.isfinite
    log10, floor, ones_like, zeros_like = jnp.log10, jnp.floor, jnp.ones_like, jnp.zeros_like
    erf = staticmethod(_erf)
    sigmoid = staticmethod(jax.nn.sigmoid)
    softplus = staticmethod(jax.nn.softplus)

    @staticmethod
    def sum(x, axis=None):
        return jnp.sum(x, axis=axis)

    @staticmethod
    def mean(x, axis=None):
        return jnp.mean(x, axis=axis)

    @staticmethod
    def amin(x, axis=None):
        return jnp.min(x, axis=axis)

    @staticmethod
    def amax(x, axis=None):
        return jnp.max(x, axis=axis)

    @staticmethod
    def stack(xs, axis=0):
        return jnp.stack(list(xs), axis=axis)

    @staticmethod
    def concat(xs, axis=0):
        return jnp.concatenate(list(xs), axis=axis)

    @staticmethod
    def clamp(x, lo, hi):
        return jnp.clip(x, lo, hi)

    @staticmethod
    def to_int(x):
        return x.astype(jnp.int32)

    @staticmethod
    def bincount(idx, length):
        # a static length: no data-dependent shape under jit
        return jnp.bincount(idx.reshape(-1), length=length)

    @staticmethod
    def arange(n, like):
        return jnp.arange(n)

    @staticmethod
    def as_dtype(x, like):
        return x.astype(like.dtype)

    @staticmethod
    def eye(n, like):
        return jnp.eye(n, dtype=like.dtype)

    @staticmethod
    def qr(m):
        return jnp.linalg.qr(m)[0]

    @staticmethod
    def svdvals(m):
        return jnp.linalg.svd(m, compute_uv=False)

    @staticmethod
    def host(x: Any) -> np.ndarray:
        return np.asarray(jax.device_get(x), dtype=np.float64)
