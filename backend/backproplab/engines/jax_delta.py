"""δ clipping and per-example gradients on the JAX engine, traced into its step.

δ clipping (`delta_clip: c`): z(l) passes through `cap_cotangent`, the identity,
whose VJP caps the cotangent δ(l) = ∂loss/∂z(l) elementwise to [−bound, bound]
before it reaches the dense layer (and the probes' tap). The bound is c/rows of
the part's mean loss, so each example's δ_i = rows·δ is capped at c, however the
batch is split: the tape's CAP_COTANGENT and torch's clamp, the same place.

Per-example gradients (`record.per_example`): `jax.vmap(jax.grad(loss of one
example))` over the batch, in chunks that bound the per-example gradients held at
once (per_example.CHUNK_ELEMENTS); per layer the norms ‖∇W_i(l)‖ and how far their
mean is from the batch gradient, both reduced on the device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..xp import norm_window
from .jax_probes import scaled_norm
from .per_example import CHUNK_ELEMENTS


def norm(x, axes=None):
    """‖x‖ over `axes` in one pass, √Σx², when every sum of squares is inside the
    window where no square can have under- or overflowed (xp's rule); else, and only
    then (lax.cond), the scaled second pass."""
    squares = jnp.sum(jnp.square(x), axis=axes)
    lo, hi = norm_window(np.dtype(x.dtype))
    inside = jnp.all((squares > lo) & (squares < hi))
    return jax.lax.cond(inside, lambda: jnp.sqrt(squares), lambda: scaled_norm(x, axes))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def cap_cotangent(z, bound: float):
    """The identity on z; its VJP caps the cotangent to [−bound, bound]."""
    return z


def _cap_fwd(z, bound):
    return z, None


def _cap_bwd(bound, _, g):
    return (jnp.clip(g, -bound, bound),)


cap_cotangent.defvjp(_cap_fwd, _cap_bwd)


def capper(delta_clip: float | None) -> Callable:
    """z -> z with its cotangent capped at delta_clip/rows (the identity without)."""
    if delta_clip is None:
        return lambda z: z
    return lambda z: cap_cotangent(z, delta_clip / z.shape[0])


def _weight_grads(tree: dict) -> list:
    """∇W per layer of a stacked gradient tree, examples first: (n, …) each; the hidden
    stack (n, L-1, W, W) as L-1 layers."""
    first, (hidden, _), out = tree["first"][0], tree["hidden"], tree["out"][0]
    return [first] + [hidden[:, i] for i in range(hidden.shape[1])] + [out]


def per_example_norms(loss: Callable, params: dict, x, labels, targets, batch_grads: dict):
    """(norms (L+1, B): ‖∇W_i(l)‖ per layer and example; mean_error (L+1,):
    max|mean_i ∇W_i(l) − ∇W(l)| / max|∇W(l)|, against the batch gradient given).

    loss(params, slots, x, labels, targets) -> (mean loss, aux): jax_step.make_loss."""
    def one(xi, li, ti):  # the gradient of one example's loss, a batch of one
        return jax.grad(lambda p: loss(p, None, xi[None], li[None], ti[None])[0])(params)

    per_batch = jax.vmap(one)
    n_params = sum(leaf.size for leaf in jax.tree.leaves(params))
    rows = x.shape[0]
    chunk = max(1, min(rows, CHUNK_ELEMENTS // max(n_params, 1)))

    def reduce(g):  # per layer: (norms of the chunk's examples, Σ over them)
        layers = _weight_grads(g)
        return ([norm(w, tuple(range(1, w.ndim))) for w in layers],
                [jnp.sum(w, axis=0) for w in layers])

    full = rows // chunk * chunk
    norms, sums = [], None
    if full:  # whole chunks in a loop, so the program does not grow with the batch
        def body(total, xs):
            n, s = reduce(per_batch(*xs))
            return [t + v for t, v in zip(total, s, strict=True)], n
        shaped = [v[:full].reshape((full // chunk, chunk) + v.shape[1:])
                  for v in (x, labels, targets)]
        zeros = [jnp.zeros(w.shape[1:], x.dtype) for w in _weight_grads(
            jax.tree.map(lambda p: p[None], params))]
        sums, stacked = jax.lax.scan(body, zeros, shaped)
        norms.append([n.reshape(-1) for n in stacked])
    if full < rows:
        n, s = reduce(per_batch(x[full:], labels[full:], targets[full:]))
        norms.append(n)
        sums = s if sums is None else [t + v for t, v in zip(sums, s, strict=True)]
    norms = jnp.stack([jnp.concatenate(parts) for parts in zip(*norms, strict=True)])
    batch = _weight_grads(jax.tree.map(lambda p: p[None], batch_grads))
    errors = []
    for total, ref in zip(sums, batch, strict=True):
        scale = jnp.max(jnp.abs(ref[0]))
        diff = jnp.max(jnp.abs(total / rows - ref[0]))
        errors.append(jnp.where(scale > 0, diff / jnp.where(scale > 0, scale, 1.0), diff))
    return norms, jnp.stack(errors)
