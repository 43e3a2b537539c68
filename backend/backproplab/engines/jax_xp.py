"""jax.numpy as a backproplab.xp namespace, for code traced under jit.

jax.numpy is an Array API namespace, so the standard part comes as it is; the
extensions here are the ones the code traced into the JAX engine's step calls:
the activations' φ′ (erf, sigmoid, softplus), the norms, the probes' histograms
and saturation, the Jacobian's layer maps. Nothing here syncs with the host but
`host`, which the engine calls once per recorded step."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf as _erf

from ..xp import ArrayNamespace


class JaxXP(ArrayNamespace):
    """jax arrays (tracers under jit) on one device."""

    def __init__(self):
        super().__init__(jnp)
        self.erf = _erf
        self.sigmoid = jax.nn.sigmoid
        self.softplus = jax.nn.softplus

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
    def host_memory(x) -> bool:
        return False

    @staticmethod
    def host(x: Any) -> np.ndarray:
        return np.asarray(jax.device_get(x), dtype=np.float64)


JAX = JaxXP()
