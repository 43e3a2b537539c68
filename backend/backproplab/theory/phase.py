"""Phase diagrams over (σ_w², σ_b²): analytic χ₁ and predicted gradient ratio,
and the same measured by building random networks for every grid point (one
batched matrix product per layer for a whole row of the grid): the network's structure
(model.network) over batched kernels, in torch where it is installed, else NumPy."""

from __future__ import annotations

import contextlib
import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model import network
from ..model.activations import ACTIVATIONS
from ..xp import NUMPY, TorchXP
from ..xp.precision import cuda_matmul_precision
from .meanfield import critical_sigma_w2, length_map, mean_dphi2
from .tables import lookup


def grid_axes(w2_range=(0.5, 4.0), b2_range=(0.0, 0.5), size=(32, 32)):
    return (np.linspace(*w2_range, size[0]), np.linspace(*b2_range, size[1]))


def _never() -> None:
    return None


def analytic(act: str, sigma_w2s: np.ndarray, sigma_b2s: np.ndarray, depth: int,
             q_in: float = 1.0, check: Callable[[], None] = _never) -> dict[str, Any]:
    """χ₁ at the fixed point and log10 of the predicted ‖δ(1)‖²/‖δ(L)‖², on the
    grid (rows: σ_b², columns: σ_w²), with the χ₁ = 1 line. Every grid point at
    once, with the Gaussian expectations read from per-activation tables. `check()`
    runs after every layer; it raises to stop the computation."""
    W2, B2 = np.meshgrid(np.asarray(sigma_w2s, float), np.asarray(sigma_b2s, float))
    q = np.full(W2.shape, q_in, dtype=np.float64)
    log_ratio = np.zeros(W2.shape)
    # ‖δ(l-1)‖² = ‖δ(l)‖² σ_w² E[φ'²](q(l-1)): sum the logs of the factors along the path
    for layer in range(depth):
        q = _length_step(act, q, W2, B2)
        check()
        if layer < depth - 1:
            with np.errstate(divide="ignore"):
                log_ratio += np.log10(_chi1(act, W2, q))
    chi = _chi1(act, W2, _fixed_point(act, q, W2, B2))
    line = [{"sigma_b2": float(b2), "sigma_w2": w2}
            for b2, w2 in zip(sigma_b2s, critical_line(act, np.asarray(sigma_b2s, float)),
                              strict=True)]
    return {"activation": act, "depth": depth, "sigma_w2": np.asarray(sigma_w2s).tolist(),
            "sigma_b2": np.asarray(sigma_b2s).tolist(), "chi1": chi.tolist(),
            "log10_grad_ratio": log_ratio.tolist(), "critical_line": line}


def analytic_grid(act: str, w2_range: tuple[float, float], b2_range: tuple[float, float],
                  grid: int, depth: int, check: Callable[[], None] = _never) -> dict[str, Any]:
    """`analytic` on a grid × grid linspace, cached: a repeated request (every page
    load, every depth change back and forth) costs nothing. Treat it as read-only.
    `check` (not part of the key) can stop a computation that is not cached yet."""
    key = (act, tuple(w2_range), tuple(b2_range), grid, depth)
    with _GRID_LOCK:
        if key in _GRIDS:
            _GRIDS.move_to_end(key)
            return _GRIDS[key]
    out = analytic(act, np.linspace(*w2_range, grid), np.linspace(*b2_range, grid), depth,
                   check=check)
    with _GRID_LOCK:
        _GRIDS[key] = out
        while len(_GRIDS) > GRID_CACHE_SIZE:
            _GRIDS.popitem(last=False)
    return out


def clear_grid_cache() -> None:
    with _GRID_LOCK:
        _GRIDS.clear()


GRID_CACHE_SIZE = 32
_GRIDS: OrderedDict = OrderedDict()
_GRID_LOCK = threading.Lock()


def _length_step(act, q, w2, b2):
    with np.errstate(invalid="ignore", over="ignore"):
        new = w2 * lookup(act, "phi2", q) + b2
    return np.where(new > 1e12, np.inf, new)


def _chi1(act, w2, q):
    """χ₁ = σ_w² E[φ'²](q), with q = ∞ read as a large q (as meanfield.chi1)."""
    return w2 * lookup(act, "dphi2", np.where(np.isfinite(q), q, 1e8))


@functools.lru_cache(maxsize=32)
def _phi2_on_grid(act: str) -> tuple[np.ndarray, np.ndarray]:
    q = np.geomspace(1e-12, 1e12, 1441)  # 60 points a decade
    return q, lookup(act, "phi2", q)


def _fixed_point(act, q, w2, b2):
    """The fixed point the length map T(q) = σ_w² E[φ²](q) + σ_b² reaches from q, at
    every point at once. T is increasing in q, so its iterates move monotonically
    towards the nearest root of T(q) − q in the direction of T(q) − q: found by a
    sign change on a fixed q grid (60 points a decade), then bisection in ln q to
    1e-14. No root up to 1e12: ∞ (overflow); none down to 1e-12: 0 (read as 1e-300,
    the limit q → 0⁺)."""
    shape = np.broadcast_shapes(np.shape(q), np.shape(w2), np.shape(b2))
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), shape).ravel()
    w2 = np.broadcast_to(np.asarray(w2, dtype=np.float64), shape).ravel()
    b2 = np.broadcast_to(np.asarray(b2, dtype=np.float64), shape).ravel()
    out = q.copy()
    grid, f = _phi2_on_grid(act)
    live = np.nonzero(np.isfinite(q) & (q > 0))[0]
    if live.size:
        q0, w, b = q[live], w2[live], b2[live]
        up = _length_step(act, q0, w, b) > q0
        gap = w[:, None] * f[None, :] + b[:, None] - grid[None, :]  # T(q_j) − q_j
        # going up: the first grid point above q0 where T − q ≤ 0; going down: the last
        # grid point below q0 where T − q ≥ 0
        above = (grid[None, :] > q0[:, None]) & (gap <= 0)
        below = (grid[None, :] < q0[:, None]) & (gap >= 0)
        j_up = np.where(above.any(1), above.argmax(1), -1)
        j_down = np.where(below.any(1), grid.size - 1 - below[:, ::-1].argmax(1), -1)
        j = np.where(up, j_up, j_down)
        lo = np.where(up, np.maximum(q0, grid[np.maximum(j - 1, 0)]), grid[np.maximum(j, 0)])
        hi = np.where(up, grid[np.maximum(j, 0)], np.minimum(q0, grid[np.minimum(j + 1,
                                                                               grid.size - 1)]))
        lo, hi = np.log(np.minimum(lo, hi)), np.log(np.maximum(lo, hi))
        for _ in range(48):  # bisection: the bracket holds one sign change of T − q
            mid = 0.5 * (lo + hi)
            qm = np.exp(mid)
            above_root = _length_step(act, qm, w, b) - qm <= 0
            # above the root T − q < 0 (the root is stable from the side we come from)
            lo, hi = np.where(above_root, lo, mid), np.where(above_root, mid, hi)
        root = np.exp(0.5 * (lo + hi))
        root = np.where(j >= 0, root, np.where(up, np.inf, 1e-300))
        same = _length_step(act, q0, w, b) == q0
        out[live] = np.where(same, q0, root)
    return out.reshape(shape)


@functools.lru_cache(maxsize=32)
def _curve(act: str) -> tuple[np.ndarray, np.ndarray]:
    """The χ₁ = 1 line parametrized by q* (as meanfield.critical_curve, from the tables)."""
    q = np.geomspace(1e-8, 100.0, 4000)
    w2 = 1.0 / lookup(act, "dphi2", q)
    return w2, q - w2 * lookup(act, "phi2", q)


def critical_line(act: str, sigma_b2s: np.ndarray) -> list[float]:
    """meanfield.critical_sigma_w2 for every σ_b² at once (nan where there is none)."""
    if ACTIVATIONS[act].scale_free:
        return [critical_sigma_w2(act, 0.0)] * len(sigma_b2s)
    w2, b2 = _curve(act)
    found = [math.nan] * len(sigma_b2s)
    owners, cands = [], []
    for k, target in enumerate(sigma_b2s):
        if target <= b2[0]:
            found[k] = float(w2[0])
            continue
        for i in np.nonzero((b2[:-1] - target) * (b2[1:] - target) <= 0)[0]:
            t = (target - b2[i]) / (b2[i + 1] - b2[i]) if b2[i + 1] != b2[i] else 0.0
            owners.append(k)
            cands.append(float(w2[i] + t * (w2[i + 1] - w2[i])))
    if cands:
        # several crossings for a non-odd φ: keep the first whose fixed point is the one
        # the length map reaches from q = 1 (every candidate iterated at once)
        cw, cb = np.array(cands), np.array([sigma_b2s[k] for k in owners])
        chi = _chi1(act, cw, _fixed_point(act, np.ones_like(cw), cw, cb))
        reached = np.abs(chi - 1.0) < 1e-4
        for k in range(len(sigma_b2s)):
            mine = [j for j, o in enumerate(owners) if o == k]
            if mine:
                found[k] = next((cands[j] for j in mine if reached[j]), cands[mine[0]])
    return found


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
