"""JAX's meter for the memory view: what `jax.vjp` keeps for the backward pass.

`jax.vjp(loss, params)` returns the backward pass as a closure whose leaves are the
residuals JAX saved in the forward pass, as concrete arrays: their bytes, once per
buffer and without the parameters themselves, are what is saved. Checkpointed
segments are `jax.checkpoint`ed: the closure then holds only what their boundaries
need, and while the backward pass recomputes a segment that segment's own
residuals are alive too; they are measured the same way, by a `jax.vjp` of the
segment alone (once per kind and length of segment; the largest counted: the peak).

The forward work is counted in the programs JAX runs, in arithmetic operations (a
product's multiply-adds, one per element otherwise: a checkpointed forward skips
φ′, which an un-checkpointed one computes for its residuals, so counting equations
would weigh tanh like a matrix product): the equations of the forward pass (jaxpr
of `jax.vjp`), plus those of the backward pass that do not depend on the
cotangent, i.e. forward values recomputed (jaxpr of the closure, nested jaxprs
followed). The pass runs a layer at a time, each layer one jitted call
(so the residuals are those between layers, as on the other meters).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import numpy as np

from ..model import batch, init_params, network
from ..model.spec import RunSpec
from ..tape.optim import split_batch

# a Wᵀ without a transpose: the residual of the product is W itself (a parameter)
_CONTRACT = (((1,), (1,)), ((), ()))


def _jaxprs_in(params: dict) -> list:
    found = []
    for value in params.values():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            inner = getattr(v, "jaxpr", v)
            if hasattr(inner, "eqns") and hasattr(inner, "invars"):
                found.append(inner)
    return found


def work(eqn) -> int:
    """Arithmetic of one equation: a matrix product's multiply-adds (output elements ×
    the contracted length), else one operation per output element."""
    out = sum(int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape"))
    if eqn.primitive.name == "dot_general":
        (contract, _), _ = eqn.params["dimension_numbers"]
        shape = eqn.invars[0].aval.shape
        return out * int(np.prod([shape[d] for d in contract]))
    return max(out, 1)


def equations(jaxpr) -> int:
    """The work of a jaxpr's equations, those of nested jaxprs (checkpointed segments,
    jitted layers) counted instead of the equation that calls them."""
    total = 0
    for eqn in jaxpr.eqns:
        subs = _jaxprs_in(eqn.params)
        total += sum(equations(s) for s in subs) if subs else work(eqn)
    return total


def untouched_by(jaxpr, tainted: list[bool]) -> tuple[int, list[bool]]:
    """(the work of the equations whose inputs do not depend on the tainted inputs,
    which outputs do)."""
    from jax.extend.core import Literal

    seen = {v: t for v, t in zip(jaxpr.invars, tainted, strict=True)}

    def is_tainted(v) -> bool:
        return not isinstance(v, Literal) and seen.get(v, False)

    count = 0
    for eqn in jaxpr.eqns:
        inputs = [is_tainted(v) for v in eqn.invars]
        subs = [s for s in _jaxprs_in(eqn.params) if len(s.invars) == len(eqn.invars)]
        if len(subs) == 1 and len(subs[0].outvars) == len(eqn.outvars):
            n, outs = untouched_by(subs[0], inputs)
            count += n
        else:
            outs = [any(inputs)] * len(eqn.outvars)
            count += 0 if any(inputs) else equations_of(eqn)
        for v, t in zip(eqn.outvars, outs, strict=True):
            seen[v] = t
    return count, [is_tainted(v) for v in jaxpr.outvars]


def equations_of(eqn) -> int:
    subs = _jaxprs_in(eqn.params)
    return sum(equations(s) for s in subs) if subs else work(eqn)


def saved_bytes(tree: Any, skip: set[int]) -> int:
    """Bytes of the arrays among a pytree's leaves, once per buffer, `skip` left out."""
    import jax

    seen, total = set(), 0
    for leaf in jax.tree.leaves(tree):
        if not isinstance(leaf, jax.Array):
            continue
        key = leaf.unsafe_buffer_pointer()
        if key in skip or key in seen:
            continue
        seen.add(key)
        total += leaf.nbytes
    return total


@functools.lru_cache(maxsize=8)
def _programs(kind: RunSpec):
    """(kernels, the first layer's program, a hidden layer's): one XLA program per kind
    of layer, the hidden ones alike at every depth, so each is compiled once for all
    the depths and strategies of a report (kind: the spec at depth 1 or 2)."""
    import jax

    from .jax_xp import JAX

    net = network.layers(kind)
    phi = net[0].activation.jax_forward(jax)
    kernels = network.Kernels(
        xp=JAX, dense=lambda a, W, b, layer: jax.lax.dot_general(a, W, _CONTRACT) + b,
        activation=lambda u, layer: phi(u))

    def compiled(layer):
        return jax.jit(lambda a, W, b: network.layer_forward(layer, kernels, a, W, b).a_out)

    return kernels, compiled(net[0]), compiled(net[1]) if kind.depth > 1 else None


def _functions(spec: RunSpec):
    """(segment(lo, hi) -> run(a, *params of its layers), loss(out, labels, targets))."""
    import jax
    import jax.numpy as jnp

    net = network.layers(spec)
    kernels, first, hidden = _programs(spec.replace(depth=min(spec.depth, 2), steps=1,
                                                    checkpoint="none", microbatches=1))

    def segment(lo: int, hi: int):
        def run(a, *chunk):
            for j, index in enumerate(range(lo, hi)):
                a = (first if index == 0 else hidden)(a, chunk[2 * j], chunk[2 * j + 1])
            return a
        return run

    def loss(params, x, labels, targets):
        a = x
        for lo, hi in spec.segment_bounds:
            run = segment(lo, hi)
            if spec.segments > 1:
                run = jax.checkpoint(run)
            a = run(a, *params[2 * lo:2 * hi])
        out = kernels.dense(a, params[-2], params[-1], net[-1])
        if spec.loss == "mse":
            return jnp.mean(jnp.square(out - targets))
        logp = jax.nn.log_softmax(out, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))

    return segment, loss


def _segment_peak(spec: RunSpec, segment, params: list, x, skip: set[int]) -> int:
    """The largest bytes a checkpointed segment saves while it is recomputed."""
    import jax

    largest, measured = 0, set()
    for lo, hi in spec.segment_bounds:
        kind = (lo == 0, hi - lo)  # segments of one kind and length save the same
        if kind in measured:
            continue
        measured.add(kind)
        run = segment(lo, hi)
        a = x if lo == 0 else jax.numpy.zeros((x.shape[0], spec.width), x.dtype)
        _, back = jax.vjp(lambda a, *c, run=run: run(a, *c), a, *params[2 * lo:2 * hi])
        largest = max(largest, saved_bytes(back, skip | {a.unsafe_buffer_pointer()}))
    return largest


def jax_pass(spec: RunSpec, microbatches: int = 1) -> tuple[Any, list[np.ndarray]]:
    """JAX's forward and backward of step 0's batch (in parts, accumulated), on the
    CPU: (memory.Pass, the mean-loss gradient)."""
    import jax

    from .memory import Pass, measured_dtype

    dtype = measured_dtype(spec)
    with jax.enable_x64(dtype == "float64"), jax.default_device(jax.devices("cpu")[0]):
        params = [jax.numpy.asarray(p, dtype=dtype) for pair in init_params(spec)
                  for p in pair]
        skip = {p.unsafe_buffer_pointer() for p in params}
        segment, loss = _functions(spec)
        x, labels, targets = batch(spec, 0)
        peak, parts, grads = 0, 0, None
        start = time.perf_counter()
        for xb, lb, tb in split_batch((x, labels, targets), microbatches):
            xs, ts = jax.numpy.asarray(xb, dtype), jax.numpy.asarray(tb, dtype)
            ls = jax.numpy.asarray(lb, np.int32)
            value, back = jax.vjp(functools.partial(loss, x=xs, labels=ls, targets=ts), params)
            saved = saved_bytes(back, skip)
            if spec.segments > 1:
                saved += _segment_peak(spec, segment, params, xs, skip)
            peak, parts = max(peak, saved), parts + 1
            share = len(xb) / len(x)  # the mean gradient: parts weighted by their share
            part = [share * g for g in back(jax.numpy.ones_like(value))[0]]
            jax.block_until_ready(part)
            grads = part if grads is None else [a + b for a, b in zip(grads, part,
                                                                       strict=True)]
        elapsed = time.perf_counter() - start
        # the operations those passes evaluated (their programs, traced once more;
        # the parts differ by a row at most: the same programs)
        forward = jax.make_jaxpr(lambda p: jax.vjp(functools.partial(
            loss, x=xs, labels=ls, targets=ts), p))(params)
        backward = jax.make_jaxpr(back)(jax.numpy.ones_like(value))
        recomputed, _ = untouched_by(backward.jaxpr, [True] * len(backward.jaxpr.invars))
        ops = parts * (equations(forward.jaxpr) + recomputed)
    return Pass(int(peak), int(ops), elapsed), [np.asarray(g, np.float64) for g in grads]
