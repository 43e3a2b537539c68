"""Transformations with JAX's shapes: vjp, jvp, grad, value_and_grad, jacrev,
jacfwd, hessian. Arguments may be pytrees (nested lists/tuples/dicts of arrays)
and gradients come back in the same structure."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any

import numpy as np

from . import ops
from .core import (
    Box,
    JVPTrace,
    JVPTracer,
    ReverseTrace,
    Tracer,
    primal_value,
    run_backward,
    tapping,
)

# --- pytrees ------------------------------------------------------------------


_CONTAINERS = (list, tuple, dict)

# A structure is None for a leaf; (kind, n) for a list or tuple of n leaves (the
# common case: a layer's (W, b)); (kind, [structures]) for any other list or tuple;
# (dict, (sorted keys, structure of the list of values)) for a dict.


def tree_flatten(tree: Any) -> tuple[list, Any]:
    """Leaves in a fixed order, and a structure to rebuild the tree from them."""
    leaves: list = []
    return leaves, _flatten_into(tree, leaves)


def _flatten_into(tree: Any, leaves: list) -> Any:
    if isinstance(tree, dict):
        keys = sorted(tree)
        return (dict, (keys, _flatten_into([tree[k] for k in keys], leaves)))
    if isinstance(tree, (list, tuple)):
        for item in tree:
            if isinstance(item, _CONTAINERS):
                return (type(tree), _flat_items(tree, leaves))
        leaves.extend(tree)
        return (type(tree), len(tree))
    leaves.append(tree)
    return None


def _flat_items(tree: list | tuple, leaves: list) -> list:
    """The structures of a list's or tuple's items, a tuple or list of leaves (the
    usual (W, b)) handled here rather than by a call of _flatten_into each."""
    out = []
    for item in tree:
        if type(item) is tuple or type(item) is list:
            for x in item:
                if isinstance(x, _CONTAINERS):
                    out.append(_flatten_into(item, leaves))
                    break
            else:
                leaves.extend(item)
                out.append((type(item), len(item)))
        else:
            out.append(_flatten_into(item, leaves))
    return out


def tree_unflatten(struct: Any, leaves: Sequence) -> Any:
    return _build(struct, iter(leaves))


def _build(struct: Any, leaves: Iterator) -> Any:
    if struct is None:
        return next(leaves)
    kind, inner = struct
    if kind is dict:
        keys, values = inner
        return dict(zip(keys, _build(values, leaves), strict=True))
    if type(inner) is int:
        return kind(islice(leaves, inner))
    out = []
    for sub in inner:  # a (W, b)-like item built here, not by a call of _build each
        if sub is not None and type(sub[1]) is int:
            out.append(sub[0](islice(leaves, sub[1])))
        else:
            out.append(_build(sub, leaves))
    return kind(out)


def tree_map(fn: Callable, tree: Any, *rest: Any) -> Any:
    leaves, struct = tree_flatten(tree)
    others = [tree_flatten(r)[0] for r in rest]
    return tree_unflatten(struct, [fn(*xs) for xs in zip(leaves, *others, strict=True)])


def _as_array(x: Any) -> Any:
    return x if isinstance(x, (Tracer, np.ndarray)) else np.asarray(x, dtype=float)


# --- reverse mode ----------------------------------------------------------------


def vjp(f: Callable, *primals: Any) -> tuple[Any, Callable]:
    """Evaluate f and return (out, vjp_fn); vjp_fn(cotangent) -> cotangents of primals."""
    out, vjp_fn, _ = _vjp(f, primals, consume=False)
    return out, vjp_fn


def _vjp(f, primals, consume):
    trace = ReverseTrace()
    flat, struct = tree_flatten(primals)
    boxes = [trace.new_input(x if type(x) is np.ndarray else _as_array(x)) for x in flat]
    out = f(*tree_unflatten(struct, boxes))
    out_leaves, out_struct = tree_flatten(out)
    out_values = [_unbox(o, trace) for o in out_leaves]

    def vjp_fn(cotangent: Any) -> tuple:
        ct_leaves = tree_flatten(cotangent)[0]
        seeds = [(o, ct) for o, ct in zip(out_leaves, ct_leaves, strict=True)
                 if isinstance(o, Box) and o._trace is trace]
        if not seeds:
            return tree_unflatten(struct, [ops.zeros_like(b._primal) for b in boxes])
        cts = run_backward(trace, seeds, consume=consume)
        grads = [cts[b.index] for b in boxes]
        grads = [ops.zeros_like(b._primal) if g is None else g for g, b in zip(grads, boxes,
                                                                           strict=True)]
        return tree_unflatten(struct, grads)

    return tree_unflatten(out_struct, out_values), vjp_fn, trace


def _unbox(x: Any, trace: ReverseTrace) -> Any:
    return x._primal if isinstance(x, Box) and x._trace is trace else x


def _select(args: tuple, argnums: int | Sequence[int]) -> tuple[tuple, Callable]:
    """Split args into the differentiated ones and a function to put them back."""
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def rebuild(chosen):
        full = list(args)
        for n, value in zip(nums, chosen, strict=True):
            full[n] = value
        return full

    return tuple(args[n] for n in nums), rebuild


def value_and_grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """(value, gradient) of a scalar-valued f with respect to args[argnums]."""

    def wrapped(*args: Any) -> tuple[Any, Any]:
        chosen, rebuild = _select(args, argnums)
        out, vjp_fn, _ = _vjp(lambda *c: f(*rebuild(c)), chosen, consume=True)
        if np.shape(primal_value(out)) != ():
            raise TypeError(f"grad requires a scalar output, got shape {np.shape(out)}")
        seed = np.ones((), dtype=np.asarray(primal_value(out)).dtype)
        grads = vjp_fn(seed)
        return out, grads[0] if isinstance(argnums, int) else grads

    return wrapped


def value_and_grad_with_taps(f: Callable, argnums: int | Sequence[int] = 0,
                             on_cotangent: Callable[[Any, Any, dict], None] | None = None,
                             on_value: Callable[[Any, Any], None] | None = None) -> Callable:
    """Like value_and_grad, also returning the values and cotangents of every
    intermediate marked with `tap(x, key)` inside f: (value, grads, values, cotangents).

    This is how the engines read δ(l) = ∂loss/∂z(l) at every layer in the same
    backward pass that computes the parameter gradients. With `on_cotangent`, each
    cotangent goes to on_cotangent(key, g, sent) as soon as it is final, not into the
    dict (sent: what the node passed back to each input position), and with
    `on_value` each value to on_value(key, value) as it is computed; see `tapping`.
    """
    vg = value_and_grad(f, argnums)

    def wrapped(*args: Any) -> tuple[Any, Any, dict, dict]:
        with tapping(on_cotangent, on_value) as (values, cotangents):
            value, grads = vg(*args)
        return value, grads, values, cotangents

    return wrapped


def grad(f: Callable, argnums: int | Sequence[int] = 0) -> Callable:
    """Gradient of a scalar-valued f with respect to args[argnums]."""
    vg = value_and_grad(f, argnums)
    return lambda *args: vg(*args)[1]


# --- forward mode ----------------------------------------------------------------


def jvp(f: Callable, primals: Sequence, tangents: Sequence) -> tuple[Any, Any]:
    """Push tangents through f: returns (f(primals), J·tangents)."""
    trace = JVPTrace()
    flat_p, struct = tree_flatten(tuple(primals))
    flat_t = tree_flatten(tuple(tangents))[0]
    tracers = [JVPTracer(_as_array(p), _as_array(t), trace)
               for p, t in zip(flat_p, flat_t, strict=True)]
    out = f(*tree_unflatten(struct, tracers))
    out_leaves, out_struct = tree_flatten(out)
    primal_out, tangent_out = [], []
    for o in out_leaves:
        if isinstance(o, JVPTracer) and o._trace is trace:
            primal_out.append(o._primal)
            tangent_out.append(ops.zeros_like(o._primal) if o._tangent is None else o._tangent)
        else:
            primal_out.append(o)
            tangent_out.append(ops.zeros_like(o))
    return tree_unflatten(out_struct, primal_out), tree_unflatten(out_struct, tangent_out)


# --- Jacobians ---------------------------------------------------------------------


def _basis(shape: tuple, dtype: Any) -> list[np.ndarray]:
    size = int(np.prod(shape))
    eye = np.eye(size, dtype=dtype)
    return [eye[i].reshape(shape) for i in range(size)]


def jacrev(f: Callable, argnums: int = 0) -> Callable:
    """Jacobian by reverse mode: one VJP per output element.

    Result shape: out.shape + arg.shape (per leaf when the argument is a pytree).
    """

    def wrapped(*args: Any) -> Any:
        chosen, rebuild = _select(args, argnums)
        out, vjp_fn = vjp(lambda c: f(*rebuild([c])), chosen[0])
        out_shape = np.shape(primal_value(out))
        dtype = primal_value(out).dtype
        rows = [vjp_fn(e) for e in _basis(out_shape, dtype)]
        leaves_per_row = [tree_flatten(r)[0] for r in rows]
        arg_leaves, arg_struct = tree_flatten(chosen[0])
        jac_leaves = []
        for k, leaf in enumerate(arg_leaves):
            stacked = ops.stack([row[k] for row in leaves_per_row], axis=0)
            jac_leaves.append(ops.reshape(stacked, out_shape + np.shape(primal_value(leaf))))
        return tree_unflatten(arg_struct, jac_leaves)

    return wrapped


def jacfwd(f: Callable, argnums: int = 0) -> Callable:
    """Jacobian by forward mode: one JVP per input element."""

    def wrapped(*args: Any) -> Any:
        chosen, rebuild = _select(args, argnums)
        arg_leaves, arg_struct = tree_flatten(chosen[0])
        jac_leaves = []
        for k, leaf in enumerate(arg_leaves):
            value = primal_value(leaf)
            shape = np.shape(value)
            columns = []
            out_shape = None
            for e in _basis(shape, np.asarray(value).dtype):
                tangent = [e if j == k else ops.zeros_like(a) for j, a in enumerate(arg_leaves)]
                out, col = jvp(lambda c: f(*rebuild([c])), (chosen[0],),
                               (tree_unflatten(arg_struct, tangent),))
                out_shape = np.shape(primal_value(out))
                columns.append(col)
            stacked = ops.stack(columns, axis=-1) if columns else np.zeros(shape)
            jac_leaves.append(ops.reshape(stacked, out_shape + shape))
        return tree_unflatten(arg_struct, jac_leaves)

    return wrapped


def hessian(f: Callable, argnums: int = 0) -> Callable:
    """Hessian of a scalar f: forward over reverse."""
    return jacfwd(jacrev(f, argnums), argnums)
