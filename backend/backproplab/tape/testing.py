"""Gradient checking: central finite differences along random directions, in
both modes, up to a given order (in the spirit of JAX's check_grads)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .core import primal_value
from .transforms import jvp, tree_flatten, tree_unflatten, vjp


def _vdot(a: Any, b: Any) -> float:
    return float(sum(np.vdot(np.asarray(primal_value(x), dtype=np.float64),
                             np.asarray(primal_value(y), dtype=np.float64))
                     for x, y in zip(tree_flatten(a)[0], tree_flatten(b)[0], strict=True)))


def _random_like(tree: Any, rng: np.random.Generator) -> Any:
    leaves, struct = tree_flatten(tree)
    return tree_unflatten(struct, [rng.standard_normal(np.shape(x)) for x in leaves])


def _axpy(alpha: float, x: Any, y: Any) -> Any:
    xs, struct = tree_flatten(x)
    return tree_unflatten(struct, [np.asarray(b) + alpha * np.asarray(a)
                                   for a, b in zip(xs, tree_flatten(y)[0], strict=True)])


def _fd_directional(f: Callable, args: tuple, v: tuple, eps: float) -> Any:
    plus = f(*_axpy(eps, v, args))
    minus = f(*_axpy(-eps, v, args))
    return tree_unflatten(tree_flatten(plus)[1],
                          [(np.asarray(p) - np.asarray(m)) / (2 * eps)
                           for p, m in zip(tree_flatten(plus)[0], tree_flatten(minus)[0],
                                           strict=True)])


def check_jvp(f: Callable, args: Sequence, eps: float, rtol: float, atol: float,
              rng: np.random.Generator) -> None:
    args = tuple(args)
    v = _random_like(args, rng)
    _, tangent = jvp(f, args, v)
    expected = _fd_directional(f, args, v, eps)
    for got, want in zip(tree_flatten(tangent)[0], tree_flatten(expected)[0], strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=rtol, atol=atol,
                                   err_msg="JVP differs from central differences")


def check_vjp(f: Callable, args: Sequence, eps: float, rtol: float, atol: float,
              rng: np.random.Generator) -> None:
    args = tuple(args)
    out, vjp_fn = vjp(f, *args)
    u = _random_like(out, rng)
    v = _random_like(args, rng)
    # ⟨u, J v⟩ two ways: the VJP paired with v, and finite differences paired with u
    got = _vdot(vjp_fn(u), v)
    want = _vdot(u, _fd_directional(f, args, v, eps))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                               err_msg="VJP differs from central differences")


def check_grads(f: Callable, args: Sequence, order: int = 2, modes: Sequence[str] = ("fwd", "rev"),
                eps: float = 1e-5, rtol: float = 1e-6, atol: float = 1e-6,
                seed: int = 0) -> None:
    """Check f's derivatives against central differences, up to `order`.

    Order 2 checks the derivative functions themselves (x ↦ J(x)v and
    x ↦ uᵀJ(x)) again, in every mode: reverse-over-reverse, forward-over-reverse...
    """
    rng = np.random.default_rng(seed)
    args = tuple(args)
    if "fwd" in modes:
        check_jvp(f, args, eps, rtol, atol, rng)
    if "rev" in modes:
        check_vjp(f, args, eps, rtol, atol, rng)
    if order > 1:
        v = _random_like(args, rng)
        out = f(*args)
        u = _random_like(out, rng)
        if "fwd" in modes:
            check_grads(lambda *a: jvp(f, a, v)[1], args, order - 1, modes, eps, rtol, atol,
                        seed + 1)
        if "rev" in modes:
            check_grads(lambda *a: vjp(f, *a)[1](u), args, order - 1, modes, eps, rtol, atol,
                        seed + 2)
