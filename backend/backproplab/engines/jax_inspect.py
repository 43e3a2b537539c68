"""The stepper's network as JAX traces it: the equations of the jaxpr of its
backward pass (`jax.vjp`) and of its forward-mode pass (`jax.jvp`), each equation
named by the tape node it belongs to, so the two can be read side by side.

Each kernel call runs inside `jax.named_scope(<tape label>)`, in the order the tape
records its nodes (dense#6, tanh#7, …, mse#11), and JAX keeps that scope on every
equation it derives from the call: the transposed equations of the backward pass
carry `transpose(jvp(dense#6))`, the tangent equations `jvp(dense#6)` (forward
mode's own tape is named by the graph's nodes too, and its last node, Σ ŷ, `sum`)."""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from typing import Any

from ..model import batch, init_params, network
from ..model.spec import RunSpec

_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(?:#\d+)?")  # a scope's names: dense#6, sum


class _Labels:
    """The tape's node labels in order, handed out to the kernel calls that recorded
    them: a dense call gets the next dense node; an activation the nodes up to the
    next dense (named by the first: a composite records several, linear none, and then
    its scope is its own name, which names no node)."""

    def __init__(self, labels: list[str]):
        self.labels, self.at = labels, 0

    def scope(self, op: str) -> str:
        rest = self.labels[self.at:]
        dense = [i for i, label in enumerate(rest) if label.startswith("dense#")]
        if op == "dense":
            if not dense:
                return op
            self.at += dense[0] + 1
            return rest[dense[0]]
        upto = dense[0] if dense else len(rest)
        if upto == 0:
            return op
        self.at += upto
        return rest[0]


def _kernels(spec: RunSpec, labels: _Labels):
    """The JAX kernels of the network, each call in the scope of its tape node."""
    import jax

    from .jax_xp import JAX

    phi = network.layers(spec)[0].activation.jax_forward(jax)

    def dense(a, W, b, layer):
        with jax.named_scope(labels.scope("dense")):
            return a @ W.T + b

    def activation(u, layer):
        with jax.named_scope(labels.scope("activation")):
            return phi(u)

    return network.Kernels(xp=JAX, dense=dense, activation=activation)


def _on_path(jaxpr: Any, seed: Any) -> list:
    """The equations that depend on the input variable `seed` (the cotangent of the
    backward pass, the tangent of the forward-mode pass), in order: the rest of a
    traced vjp or jvp is the primal computation it needs."""
    from jax.extend.core import Literal

    live, out = {seed}, []
    for eqn in jaxpr.eqns:
        if any(not isinstance(v, Literal) and v in live for v in eqn.invars):
            live.update(eqn.outvars)
            out.append(eqn)
    return out


class _Names:
    """Variable names shared by every equation listed (a, b, …, z, ba, …), in order of
    first appearance, as JAX names them in a printed jaxpr."""

    def __init__(self):
        self.found: dict = {}

    def __call__(self, var: Any) -> str:
        from jax.extend.core import Literal

        if isinstance(var, Literal):
            return str(var.val)
        name = self.found.get(var)
        if name is None:
            n, name = len(self.found), ""
            while True:
                name = chr(ord("a") + n % 26) + name
                n = n // 26
                if not n:
                    break
            self.found[var] = name
        return name


def _params(eqn: Any) -> str:
    """The equation's parameters that print short (axes, permutation, dimension
    numbers; not dtypes, which the result's type shows, shardings or long reprs); of a
    nested program, its name."""
    if any(hasattr(v, "eqns") or hasattr(v, "jaxpr") for v in eqn.params.values()):
        return f"[name={eqn.params.get('name', '')!r}]"  # a nested program: its name
    import numpy as np

    shown = []
    for key, value in eqn.params.items():
        text = repr(value)
        if value is not None and not isinstance(value, np.dtype) and "sharding" not in key \
                and len(text) <= 40:
            shown.append(f"{key}={text}")
    return f"[{', '.join(shown)}]" if shown else ""


def _equations(eqns: list, node_of: dict[str, int]) -> list[dict[str, Any]]:
    """Each equation: the tape node its scope names (None: none does), the scope, the
    primitive, operand and result types, and the equation written out
    (`c:f64[1,3] = dot_general[…] a b`, names shared across the list)."""
    names, out = _Names(), []
    for eqn in eqns:
        scope = str(eqn.source_info.name_stack)
        node = next((node_of[name] for name in reversed(_NAME.findall(scope))
                     if name in node_of), None)
        ins = " ".join(names(v) for v in eqn.invars)
        results = " ".join(f"{names(v)}:{v.aval.str_short(short_dtypes=True)}"
                           for v in eqn.outvars)
        out.append({
            "node": node,
            "scope": scope,
            "primitive": eqn.primitive.name,
            "inputs": [v.aval.str_short() for v in eqn.invars if hasattr(v, "aval")],
            "outputs": [v.aval.str_short() for v in eqn.outvars],
            "text": f"{results} = {eqn.primitive.name}{_params(eqn)} {ins}",
        })
    return out


def programs(spec: RunSpec, op_labels: list[str], forward_labels: list[str]):
    """The tape walk's two functions in JAX, each kernel in the scope of its tape node
    (labels in tape order: the backward pass's operations, the forward-mode tape's):
    loss(params) and summed(x) = Σ ŷ, what forward mode differentiates; with the walk's
    parameters, batch and dtype. Returns (loss, summed, params, x)."""
    import jax
    import jax.numpy as jnp

    from .jax_step import loss_value

    params = [p for pair in init_params(spec) for p in pair]
    x, labels, targets = batch(spec, 0)
    net = network.layers(spec)

    def loss(ps):
        out = network.forward(net, _kernels(spec, _Labels(op_labels)), x, ps)
        with jax.named_scope(op_labels[-1]):
            return loss_value(spec.loss, out, labels, targets)

    def summed(xx):
        out = network.forward(net, _kernels(spec, _Labels(forward_labels[:-1])), xx, params)
        with jax.named_scope(forward_labels[-1]):
            return jnp.sum(out)

    return loss, summed, params, x


def walk(spec: RunSpec, graph: dict, forward_steps: list[dict]) -> dict[str, Any]:
    """The backward and forward-mode passes of the tape walk's network as JAX traces
    them, equation by equation, each named by its tape node. Traced only, never run:
    nothing is compiled; and the equations depend on the network's shape only (the
    values are the trace's arguments), so a shape traced before is not traced again."""
    ops = [n for n in graph["nodes"] if n["op"] != "input"]
    # forward mode runs on a tape of its own (dense#1 …, ending in sum where the graph
    # ends in the loss), whose operations are the graph's in the same order: its
    # equations carry the graph's names, as the stepper lights the graph's nodes
    same = len(ops) == len(forward_steps) and all(
        n["op"] == s["op"] for n, s in zip(ops[:-1], forward_steps[:-1], strict=False))
    names = [n["label"] for n in ops[:-1]] + ["sum"] if same else \
        [s["label"] for s in forward_steps]
    # the values do not change the equations: one trace per shape
    shape = replace(spec, init="xavier_normal", sigma_w=1.0, sigma_b=0.0, seed=0)
    return _traced(shape, tuple((n["label"], n["id"]) for n in ops),
                   tuple((name, s["index"]) for name, s in zip(names, forward_steps,
                                                                 strict=True)))


@functools.lru_cache(maxsize=256)
def _traced(spec: RunSpec, ops: tuple, forward_steps: tuple) -> dict[str, Any]:
    import jax
    import numpy as np

    loss, summed, params, x = programs(spec, [label for label, _ in ops],
                                       [label for label, _ in forward_steps])
    with jax.enable_x64(params[0].dtype == np.float64):  # the tape walk's dtype
        backward = jax.make_jaxpr(lambda ps, ct: jax.vjp(loss, ps)[1](ct))(
            params, np.ones((), params[0].dtype)).jaxpr
        forward = jax.make_jaxpr(lambda xx, t: jax.jvp(summed, (xx,), (t,))[1])(
            x, np.zeros_like(x)).jaxpr
    return {"jax": jax.__version__, "dtype": str(params[0].dtype),
            "backward": _equations(_on_path(backward, backward.invars[-1]), dict(ops)),
            "forward": _equations(_on_path(forward, forward.invars[-1]), dict(forward_steps))}
