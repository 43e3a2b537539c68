"""Per-example gradients: per layer, the distribution of ‖∇W_i(l)‖ over the examples i
of a batch, and the check that their mean is the batch gradient.

A minibatch gradient is the mean of per-example gradients, ∇W(l) = (1/B) Σ_i ∇W_i(l).
Two independent computations:
- from an engine's own pass (the tape; torch with δ clipping): that pass's per-example
  δ_i(l) = B·∂loss/∂z_i(l) and inputs a_i(l-1) give ∇W_i(l) = δ_i(l) a_i(l-1)ᵀ,
  whose Frobenius norm is ‖δ_i(l)‖·‖a_i(l-1)‖ (a rank-one matrix), and whose mean
  (1/B) Σ_i δ_i a_iᵀ is formed over the examples;
- torch: `torch.func.vmap(torch.func.grad(loss of one example))`, autograd's own
  per-example gradients, in chunks of examples that bound the memory; JAX the same
  with `jax.vmap(jax.grad(...))` inside its jitted step (jax_delta).
"""

from __future__ import annotations

from typing import Any

import numpy as np

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
CHUNK_ELEMENTS = 1 << 24  # per-example gradient entries held at once (vmap, in chunks)


def summary(norms: np.ndarray, mean_grad: np.ndarray, batch_grad: np.ndarray) -> dict:
    """min, quartiles, max and mean of the per-example norms; mean_error: max|mean of
    the per-example ∇W − the batch ∇W| / max|batch ∇W|."""
    scale = float(np.max(np.abs(batch_grad)))
    diff = float(np.max(np.abs(mean_grad - batch_grad)))
    return from_norms(norms, diff / scale if scale > 0 else diff)


def from_norms(norms: np.ndarray, mean_error: float) -> dict:
    """The summary of per-example norms whose mean-vs-batch error is already known
    (the JAX engine reduces the gradients on the device: jax_delta)."""
    q = np.quantile(norms, QUANTILES) if norms.size else np.full(len(QUANTILES), np.nan)
    return {"min": float(q[0]), "q25": float(q[1]), "median": float(q[2]),
            "q75": float(q[3]), "max": float(q[4]), "mean": float(np.mean(norms)),
            "mean_error": mean_error}


class _Keep:
    """A collector that keeps every layer's whole output a(l) and cotangent at z(l)."""

    def __init__(self, depth: int):
        self.a: list = [None] * (depth + 1)
        self.g: list = [None] * (depth + 1)
        self.param_norms = None

    def forward(self, index: int, z: Any, a: Any) -> None:
        self.a[index] = a

    def backward(self, index: int, g: Any) -> None:
        self.g[index] = g

    def params(self, index: int, gW: Any, gb: Any, W: Any) -> None:
        pass


def from_pass(engine: Any, x: np.ndarray, labels: np.ndarray, targets: np.ndarray,
              grads: list) -> list[dict]:
    """Per layer (hidden, then output): the summary, from the engine's own backward."""
    xp, depth = engine.xp, engine.spec.depth
    keep = _Keep(depth)
    engine.forward_backward(engine.to_device(x), labels, engine.to_device(targets), keep)
    rows = len(x)
    out = []
    a_in = np.asarray(x, dtype=np.float64)
    for index in range(depth + 1):
        g = keep.g[index]
        delta = np.zeros((rows, engine.spec.layer_sizes[index][0])) if g is None else \
            np.asarray(xp.host(g), dtype=np.float64) * rows  # δ_i = B·∂(mean loss)/∂z_i
        norms = np.linalg.norm(delta, axis=1) * np.linalg.norm(a_in, axis=1)
        mean = delta.T @ a_in / rows  # (1/B) Σ_i δ_i a_iᵀ
        out.append(summary(norms, mean, np.asarray(xp.host(grads[2 * index]), np.float64)))
        if index < depth:
            a_in = np.asarray(xp.host(keep.a[index]), dtype=np.float64)
    return out


def with_vmap(engine: Any, x: np.ndarray, labels: np.ndarray, targets: np.ndarray,
              grads: list) -> list[dict]:
    """Per layer: the summary from torch.func.vmap(grad) of one example's loss."""
    import torch
    from torch.func import grad, vmap

    from ..model import network

    spec, k, net = engine.spec, engine.kernels, engine.net
    params = [p.detach() for p in engine.params]

    def example_loss(flat, xi, li, ti):
        out = network.forward(net, k, xi[None], list(flat))[0]
        if spec.loss == "mse":
            return ((out - ti) ** 2).mean()  # the batch loss is the mean of these
        return -torch.log_softmax(out, -1).gather(0, li[None])[0]

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0, 0))
    xs, ts = engine.to_device(x), engine.to_device(targets)
    ls = torch.as_tensor(labels, device=xs.device)
    n_params = sum(p.numel() for p in params)
    chunk = max(1, CHUNK_ELEMENTS // max(n_params, 1))
    norms = [[] for _ in range(spec.depth + 1)]
    sums = [torch.zeros_like(W) for W in params[0::2]]
    for lo in range(0, len(x), chunk):
        g = per_example(tuple(params), xs[lo:lo + chunk], ls[lo:lo + chunk],
                        ts[lo:lo + chunk])
        for index in range(spec.depth + 1):
            gW = g[2 * index]  # (examples, fan_out, fan_in)
            norms[index].append(torch.linalg.vector_norm(gW.flatten(1), dim=1))
            sums[index] += gW.sum(0)
    out = []
    for index in range(spec.depth + 1):
        n = torch.cat(norms[index]).double().cpu().numpy()
        mean = (sums[index] / len(x)).double().cpu().numpy()
        out.append(summary(n, mean, grads[2 * index].double().cpu().numpy()))
    return out
