"""Gradient checkpointing: keep only a segment's inputs, recompute it backward.

`checkpoint(f, *args)` evaluates f without saving its intermediate values and
records one node. Its VJP re-runs f on a fresh tape (one extra forward pass
per segment) and pulls the cotangent back through it, after which that tape is
freed. For a chain of L layers cut into √L segments the tape holds O(√L)
activations at once instead of O(L).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .core import Box, Primitive, ReverseTrace, innermost_trace, nbytes_of, vjp_rules
from .transforms import _vjp, tree_flatten, tree_unflatten


def _evaluate(f: Callable, vals: Sequence) -> Any:
    trace = ReverseTrace(save=False)  # counts the forward ops, saves nothing
    out = f(*[trace.new_input(v) for v in vals])
    return out._primal if isinstance(out, Box) and out._trace is trace else out


CHECKPOINT = Primitive("checkpoint", lambda *args, fun: fun(*args))


def _checkpoint_vjp(g, ans, primals, params, positions):
    # one recomputation of the segment on a fresh tape serves every argument
    _, vjp_fn, _ = _vjp(params["fun"], tuple(primals), consume=True)
    cts = vjp_fn(g)
    return [cts[i] for i in positions]


vjp_rules[CHECKPOINT] = _checkpoint_vjp


def checkpoint(f: Callable, *args: Any) -> Any:
    """Apply f(*args) as one recomputed segment on the current tape.

    Everything f differentiates with respect to must come in through args
    (pytrees allowed): values f closes over are constants to the segment.
    """
    flat, struct = tree_flatten(args)
    top = innermost_trace(flat)
    if not isinstance(top, ReverseTrace) or not top.save:
        return f(*args)  # nothing is being saved: just run it

    def flat_f(*leaves):
        return f(*tree_unflatten(struct, leaves))

    primals, positions, parents = list(flat), [], []
    for i, a in enumerate(flat):
        if isinstance(a, Box) and a._trace is top:
            primals[i] = a._primal
            positions.append(i)
            parents.append(a)
    ans = _evaluate(flat_f, primals)
    box = Box(ans, top, CHECKPOINT, primals, {"fun": flat_f}, positions, parents, len(top.nodes))
    top.nodes.append(box)
    top.meter.save(nbytes_of(ans))
    return box


def checkpoint_sequential(layer: Callable, layer_params: Sequence, x: Any,
                          segments: int) -> Any:
    """x ↦ layer(…layer(layer(x, p0, 0), p1, 1)…) cut into `segments` checkpointed
    segments; each layer gets its parameters and its index."""
    n = len(layer_params)
    bounds = [round(k * n / segments) for k in range(segments + 1)]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if hi == lo:
            continue

        def segment(h, chunk, lo=lo):
            for k, p in enumerate(chunk):
                h = layer(h, p, lo + k)
            return h

        x = checkpoint(segment, x, list(layer_params[lo:hi]))
    return x
