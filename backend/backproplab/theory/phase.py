"""Phase diagrams over (σ_w², σ_b²): analytic χ₁ and predicted gradient ratio,
and the same measured by building random networks for every grid point (one
batched matrix product per layer for a whole row of the grid): the network's structure
(model.network) over batched kernels, in torch where it is installed, else NumPy."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model import network
from ..xp import NUMPY, TorchXP
from ..xp.precision import cuda_matmul_precision
from .meanfield import chi1, critical_sigma_w2, length_map, mean_dphi2


def grid_axes(w2_range=(0.5, 4.0), b2_range=(0.0, 0.5), size=(32, 32)):
    return (np.linspace(*w2_range, size[0]), np.linspace(*b2_range, size[1]))


def _never() -> None:
    return None


def analytic(act: str, sigma_w2s: np.ndarray, sigma_b2s: np.ndarray, depth: int,
             q_in: float = 1.0, check: Callable[[], None] = _never) -> dict[str, Any]:
    """χ₁ at the fixed point and log10 of the predicted ‖δ(1)‖²/‖δ(L)‖², on the
    grid (rows: σ_b², columns: σ_w²), with the χ₁ = 1 line. `check()` runs after
    every layer and iteration; it raises to stop the computation."""
    W2, B2 = np.meshgrid(sigma_w2s, sigma_b2s)
    q = np.full(W2.shape, q_in)
    log_ratio = np.zeros(W2.shape)
    qs = []
    for _ in range(depth):
        q = length_map(act, q, W2, B2)
        q = np.where(q > 1e12, np.inf, q)
        qs.append(q)
        check()
    # ‖δ(l-1)‖² = ‖δ(l)‖² σ_w² E[φ'²](q(l-1)): sum the logs of the factors along the path
    for q_l in qs[:-1]:
        factor = chi1(act, W2, q_l)
        with np.errstate(divide="ignore"):
            log_ratio += np.log10(factor)
    q_fixed = qs[-1]
    for _ in range(2000):  # carry on to the fixed point for χ₁
        check()
        new = length_map(act, q_fixed, W2, B2)
        new = np.where(new > 1e12, np.inf, new)
        if np.allclose(new, q_fixed, rtol=1e-12, atol=1e-300, equal_nan=True):
            break
        q_fixed = new
    chi = chi1(act, W2, q_fixed)
    line = [{"sigma_b2": float(b2), "sigma_w2": critical_sigma_w2(act, float(b2))}
            for b2 in sigma_b2s]
    return {"activation": act, "depth": depth, "sigma_w2": sigma_w2s.tolist(),
            "sigma_b2": sigma_b2s.tolist(), "chi1": chi.tolist(),
            "log10_grad_ratio": log_ratio.tolist(), "critical_line": line}


def _torch_or_none(device: str | None):
    try:
        import torch
    except ImportError:
        return None, None
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch, torch.device(device)


def measured(act: str, sigma_w2s: np.ndarray, sigma_b2s: np.ndarray, depth: int, width: int,
             batch: int, seed: int = 0, device: str | None = None,
             dtype: str = "float32", check: Callable[[], None] = _never) -> dict[str, Any]:
    """Measure ‖δ(l)‖ at initialization for every grid point.

    The G points of one grid row are one batch of networks: weights (G, W, W) per
    layer, z = h Wᵀ + b by one batched matmul; then δ is pulled back with one
    batched matmul per layer, from a random cotangent at the last hidden layer.
    One row at a time (seeded by the row), so memory is that of one row whatever
    the grid; `check()` runs after every layer."""
    W2, B2 = np.meshgrid(sigma_w2s, sigma_b2s)
    torch, dev = _torch_or_none(device)
    start = time.perf_counter()
    rows = []
    for row in range(W2.shape[0]):
        sw, sb = np.sqrt(W2[row]), np.sqrt(B2[row])
        row_seed = int(np.random.SeedSequence([seed, row]).generate_state(1)[0])
        if torch is not None:
            with cuda_matmul_precision(torch, False) if dev.type == "cuda" else \
                    contextlib.nullcontext():
                rows.append(_measure_torch(torch, dev, act, sw, sb, depth, width, batch,
                                           row_seed, dtype, check))
        else:
            rows.append(_measure_numpy(act, sw, sb, depth, width, batch, row_seed, dtype,
                                       check))
    log_profile = np.concatenate(rows, axis=0)
    sw = np.sqrt(W2.ravel())
    backend = f"torch/{dev.type}" if torch is not None else "numpy"
    elapsed = time.perf_counter() - start
    # per-layer factor of ‖δ‖²: least-squares slope of ln ‖δ(l)‖² over depth
    layers = np.arange(depth)
    lo = min(depth - 1, max(1, depth // 10))
    # ln ‖δ(l)‖² = ln ‖δ(L)‖² + (L − l) ln χ₁: the slope over l is −ln χ₁
    slope = np.polyfit(layers[lo:], log_profile[:, lo:].T, 1)[0] if depth - lo >= 2 else \
        np.full(len(sw), math.nan)
    ratio = (log_profile[:, 0] - log_profile[:, -1]) / math.log(10)
    shape = W2.shape
    return {"activation": act, "depth": depth, "width": width, "batch": batch,
            "sigma_w2": sigma_w2s.tolist(), "sigma_b2": sigma_b2s.tolist(),
            "measured_chi1": np.exp(-slope).reshape(shape).tolist(),
            "log10_grad_ratio": ratio.reshape(shape).tolist(),
            "seconds": elapsed, "backend": backend}


def _delta_profile(net: list, k: network.Kernels, h, weights: list, biases: list, g,
                   squared_norm, check: Callable[[], None] = _never) -> list:
    """ln ‖δ(l)‖² per layer, input side first: the forward pass over the grid's networks,
    then δ pulled back from the cotangent g at the last hidden layer."""
    values = []
    for layer, W, b in zip(net, weights, biases, strict=True):
        values.append(network.layer_forward(layer, k, h, W, b))
        h = values[-1].a_out
        check()
    norms = []
    for layer, W, v in zip(reversed(net), reversed(weights), reversed(values), strict=True):
        delta = network.layer_delta(layer, k, g, v)  # δ(l) = g(l) ⊙ φ'(z(l))
        norms.append(squared_norm(delta))
        g = network.layer_input_grad(layer, k, delta, g, W)  # g(l-1) = W(l)ᵀ δ(l)
        check()
    return norms[::-1]


def _measure_torch(torch, dev, act, sw, sb, depth, width, batch, seed, dtype, check=_never):
    tdtype = getattr(torch, dtype)
    gen = torch.Generator(device=dev).manual_seed(seed)
    G = len(sw)
    sw_t = torch.as_tensor(sw, device=dev, dtype=tdtype)[:, None, None]
    sb_t = torch.as_tensor(sb, device=dev, dtype=tdtype)[:, None, None]
    net = network.stack([width] * (depth + 1), act)
    forward = net[0].activation.torch_forward(torch)
    k = network.Kernels(xp=TorchXP(torch),
                        dense=lambda a, W, b, layer: torch.baddbmm(b, a, W.transpose(1, 2)),
                        activation=lambda u, layer: forward(u), matmul=torch.bmm)
    with torch.no_grad():
        h = torch.randn(G, batch, width, generator=gen, device=dev, dtype=tdtype)
        weights, biases = [], []
        for _ in range(depth):
            W = torch.randn(G, width, width, generator=gen, device=dev, dtype=tdtype)
            weights.append(W.mul_(sw_t / math.sqrt(width)))
            biases.append(torch.randn(G, 1, width, generator=gen, device=dev,
                                      dtype=tdtype) * sb_t)
        g = torch.randn(G, batch, width, generator=gen, device=dev, dtype=tdtype)
        norms = _delta_profile(net, k, h, weights, biases, g,
                               lambda d: (d.double() ** 2).sum(dim=(1, 2)), check)
        return torch.log(torch.stack(norms, dim=1)).cpu().numpy()


def _measure_numpy(act, sw, sb, depth, width, batch, seed, dtype, check=_never):
    rng = np.random.default_rng(seed)
    G = len(sw)
    dt = np.dtype(dtype)
    net = network.stack([width] * (depth + 1), act)
    k = network.Kernels(xp=NUMPY, dense=lambda a, W, b, layer: np.matmul(
        a, W.transpose(0, 2, 1)) + b, matmul=np.matmul)
    h = rng.standard_normal((G, batch, width), dtype=dt)
    weights, biases = [], []
    for _ in range(depth):
        weights.append(rng.standard_normal((G, width, width), dtype=dt)
                       * (sw / math.sqrt(width)).astype(dt)[:, None, None])
        biases.append(rng.standard_normal((G, 1, width), dtype=dt) * sb.astype(dt)[:, None, None])
    g = rng.standard_normal((G, batch, width), dtype=dt)
    norms = _delta_profile(net, k, h, weights, biases, g,
                           lambda d: np.sum(d.astype(np.float64) ** 2, axis=(1, 2)), check)
    with np.errstate(divide="ignore"):
        return np.log(np.stack(norms, axis=1))


def predicted_chi1_along(act: str, sigma_w2: float, sigma_b2: float, depth: int,
                         q_in: float = 1.0) -> float:
    """Geometric mean of the per-layer δ factors along the trajectory from q_in."""
    q, logs = q_in, []
    for _ in range(depth):
        q = float(length_map(act, q, sigma_w2, sigma_b2))
        logs.append(math.log(sigma_w2 * float(mean_dphi2(act, q))))
    return math.exp(float(np.mean(logs)))
