"""The spread a finite width makes expected: ‖δ(l)‖ at initialization over an ensemble
of networks like the run's — the same config with seeds seed, seed+1, …, seed+S−1 —
in one batched forward and backward pass.

Every layer's weights are stacked (S, fan_out, fan_in) and the data (S, B, fan_in), so
a layer is one batched matmul per direction for all S networks (model.network over
batched NumPy kernels). Network s is drawn exactly as an engine draws it
(model.init_params for its seed, model.batch for step 0), so its ‖δ(l)‖ is the one a
run with that seed records at step 0: the RMS over the examples of the per-example
δ_i(l) = B·∂(mean loss)/∂z_i(l), i.e. √B ‖∂(mean loss)/∂z(l)‖_F.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model import batch, init_params, network
from ..model.spec import RecordSpec, RunSpec
from ..xp import NUMPY

DEFAULT_SEEDS = 32
QUANTILES = (0.1, 0.5, 0.9)
MAX_SEEDS = 64
MIN_AUTO_SEEDS = 8
MAX_WORK = 6e9  # multiply-adds of the ensemble's passes (default config: 1.3e9)
MAX_DRAWS = 5e7  # weights drawn for the ensemble (default config: 1e7)


def _never() -> None:
    return None


def _dense(a: np.ndarray, W: np.ndarray, b: np.ndarray, layer: network.Layer) -> np.ndarray:
    return np.matmul(a, W.transpose(0, 2, 1)) + b[:, None, :]  # z = a Wᵀ + b, per network


BATCHED = network.Kernels(xp=NUMPY, dense=_dense, matmul=np.matmul)


def ensemble_dtype(spec: RunSpec) -> np.dtype:
    """The run's float dtype where NumPy has it (bfloat16 and tf32 runs: float32)."""
    return np.dtype(spec.dtype if spec.dtype in ("float32", "float64") else "float32")


def ensemble_bytes(spec: RunSpec, seeds: int) -> int:
    """Peak bytes: every network's parameters, and per layer the (S, B, width) arrays a
    layer keeps for the backward pass (a, z, u, y) with two more in flight."""
    b = ensemble_dtype(spec).itemsize
    params = sum(fo * fi + fo for fo, fi in spec.layer_sizes)
    width = max(spec.width, spec.out_features, spec.in_features)
    kept = (4 * spec.depth + 2) * spec.batch_size * width
    return int(seeds * (params + kept) * b)


def weights_drawn(spec: RunSpec, seeds: int) -> int:
    """Weights the ensemble draws (every network's matrices)."""
    return seeds * sum(fo * fi for fo, fi in spec.layer_sizes)


def auto_seeds(spec: RunSpec) -> int:
    """As many networks as the limits allow, up to DEFAULT_SEEDS, at least
    MIN_AUTO_SEEDS (a large network's band from 8 seeds rather than none)."""
    return max(MIN_AUTO_SEEDS, min(DEFAULT_SEEDS, int(MAX_WORK // ensemble_work(spec, 1)),
                                   int(MAX_DRAWS // weights_drawn(spec, 1))))


def within_limits(spec: RunSpec, seeds: int) -> bool:
    return ensemble_work(spec, seeds) <= MAX_WORK and weights_drawn(spec, seeds) <= MAX_DRAWS


def ensemble_work(spec: RunSpec, seeds: int) -> float:
    """Multiply-adds of the forward and backward passes of all the networks."""
    return float(2 * spec.batch_size * weights_drawn(spec, seeds))


def ensemble_delta_norms(spec: RunSpec, seeds: int = DEFAULT_SEEDS,
                         check: Callable[[], None] = _never) -> np.ndarray:
    """(S, L+1): ‖δ(l)‖ of the networks with seeds spec.seed … spec.seed+S−1 at step 0,
    hidden layers then the output layer, as a run's record has them. `check()` runs
    after every layer; it raises to stop."""
    dtype = ensemble_dtype(spec)
    net = network.layers(spec)
    specs = [spec.replace(seed=spec.seed + k) for k in range(seeds)]
    # the draws are per seed (each network's own generator, as an engine draws it);
    # everything after them is batched over the seeds
    weights = [np.empty((seeds, fo, fi), dtype) for fo, fi in spec.layer_sizes]
    biases = [np.empty((seeds, fo), dtype) for fo, _ in spec.layer_sizes]
    data = []
    for k, one in enumerate(specs):
        for layer, (W, b) in enumerate(init_params(one)):
            weights[layer][k], biases[layer][k] = W, b
        data.append(batch(one, 0))
        check()
    x = np.stack([d[0] for d in data]).astype(dtype)
    labels = np.stack([d[1] for d in data])
    targets = np.stack([d[2] for d in data]).astype(dtype)
    rows = x.shape[1]
    cap = None if spec.delta_clip is None else spec.delta_clip / rows  # as the engines

    def capped(g: np.ndarray) -> np.ndarray:
        return g if cap is None else np.clip(g, -cap, cap)

    def rms_norm(g: np.ndarray) -> np.ndarray:  # √B ‖g‖_F per network, in float64
        return np.sqrt(rows * np.sum(np.square(g, dtype=np.float64), axis=(1, 2)))

    # one BLAS thread: many small matmuls, on cores that live runs share (BLAS workers
    # spinning against the runs cost more than they bring); overflow to ±Inf/NaN is a
    # result here, not a warning
    with _one_blas_thread(), np.errstate(all="ignore"):
        values, a = [], x
        for layer in net[:-1]:
            values.append(network.layer_forward(layer, BATCHED, a, weights[layer.index],
                                                biases[layer.index]))
            a = values[-1].a_out
            check()
        out = _dense(a, weights[-1], biases[-1], net[-1])
        g = capped(_loss_cotangent(spec.loss, out, labels, targets))
        norms = [rms_norm(g)]
        g_a = np.matmul(g, weights[-1])  # ∂loss/∂a(L) = δ(L+1) W(L+1)
        for layer, v in zip(reversed(net[:-1]), reversed(values), strict=True):
            delta = capped(network.layer_delta(layer, BATCHED, g_a, v))  # δ(l) = g ⊙ φ'(z)
            norms.append(rms_norm(delta))
            if layer.index > 0:
                g_a = network.layer_input_grad(layer, BATCHED, delta, g_a,
                                               weights[layer.index])
            check()
    return np.stack(norms[::-1], axis=1)


def _one_blas_thread() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed matter
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _loss_cotangent(loss: str, out: np.ndarray, labels: np.ndarray,
                    targets: np.ndarray) -> np.ndarray:
    """∂(mean loss)/∂out per network: mse 2(out − t)/(B·classes); cross-entropy
    (softmax − one-hot)/B."""
    if loss == "mse":
        return (out - targets) * (2.0 / (out.shape[1] * out.shape[2]))
    shifted = out - out.max(axis=2, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=2, keepdims=True)
    s, i = np.meshgrid(np.arange(out.shape[0]), np.arange(out.shape[1]), indexing="ij")
    p[s, i, labels] -= 1.0
    return p / out.shape[1]


def _summary(logs: np.ndarray) -> dict[str, list[float]]:
    """Per layer (columns): the quantiles over the networks (NaN, an overflow, counts
    as +∞), and the mean and sd of the finite values (NaN with fewer than two)."""
    ordered = np.where(np.isnan(logs), np.inf, logs)
    with np.errstate(invalid="ignore"):
        q = np.quantile(ordered, QUANTILES, axis=0)
        # between two infinite order statistics linear interpolation gives ∞ − ∞: the
        # lower one is the answer there
        q = np.where(np.isnan(q), np.quantile(ordered, QUANTILES, axis=0, method="lower"), q)
    finite = np.isfinite(logs)
    count = finite.sum(axis=0)
    safe = np.where(finite, logs, 0.0)
    mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), math.nan)
    dev = np.where(finite, logs - mean, 0.0)
    var = np.where(count > 1, (dev**2).sum(axis=0) / np.maximum(count - 1, 1), math.nan)
    out = {f"q{round(100 * level)}": row.tolist() for level, row in zip(QUANTILES, q,
                                                                          strict=True)}
    return out | {"mean": mean.tolist(), "sd": np.sqrt(var).tolist()}


def seed_spread(spec: RunSpec, seeds: int = DEFAULT_SEEDS,
                check: Callable[[], None] = _never) -> dict[str, Any]:
    """The ensemble's spread per hidden layer, of ln ‖δ(l)‖ and of
    ln(‖δ(l)‖/‖δ(L)‖) (L the last hidden layer, where the mean-field line is anchored):
    10th, 50th and 90th percentiles, mean and sd (natural logs)."""
    start = time.perf_counter()
    norms = ensemble_delta_norms(_at_init(spec), seeds, check)[:, :spec.depth]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(norms)
        ratio = logs - logs[:, -1:]
    return {"seeds": [spec.seed + k for k in range(seeds)], "layers": list(range(spec.depth)),
            "dtype": str(ensemble_dtype(spec)), "batch_size": spec.batch_size,
            "ln_delta_norm": _summary(logs), "ln_ratio_to_last": _summary(ratio),
            "nonfinite": (~np.isfinite(norms)).sum(axis=0).tolist(),
            "seconds": time.perf_counter() - start}


def _at_init(spec: RunSpec) -> RunSpec:
    """What the ensemble depends on: neither the training nor the engine (two configs
    that differ only there share a cached answer)."""
    return spec.replace(engine="numpy", device="cpu", lr=0.0, steps=1, microbatches=1,
                        checkpoint="none", checkpoint_every=4, optimizer="sgd", clip=None,
                        record=RecordSpec())


CACHE_SIZE = 64
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()


def cached_seed_spread(spec: RunSpec, seeds: int = DEFAULT_SEEDS,
                       check: Callable[[], None] = _never) -> dict[str, Any]:
    """`seed_spread`, cached on what it depends on (a slider that only moves the
    learning rate or the steps costs nothing). Treat the answer as read-only."""
    key = (_at_init(spec), seeds)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    out = seed_spread(spec, seeds, check)
    with _CACHE_LOCK:
        _CACHE[key] = out
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out
