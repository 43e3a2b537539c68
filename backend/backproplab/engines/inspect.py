"""A small network recorded on the tape, for the backprop stepper: its graph,
every backward step with its cotangents, and for each hidden layer the numbers
of the recurrence δ(l) = (W(l+1)ᵀ δ(l+1)) ⊙ σ'(z(l)); plus one forward-mode pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import tape
from ..model import batch, init_params, network
from ..model.spec import RunSpec
from ..tape import ops
from ..xp import NUMPY
from .tape_engine import TAPE_KERNELS


def _network(spec: RunSpec):
    params = init_params(spec)
    x, labels, targets = batch(spec, 0)
    names, values = [], []
    for i, (W, b) in enumerate(params, start=1):
        names += [f"W{i}", f"b{i}"]
        values += [W, b]
    net = network.layers(spec)

    def loss(*ps):
        out = network.forward(net, TAPE_KERNELS, x, ps)
        return ops.mse(out, targets) if spec.loss == "mse" else \
            ops.softmax_cross_entropy(out, labels)

    return names, values, loss, x


def backprop_walk(spec: RunSpec, tangent_input: int = 0) -> dict[str, Any]:
    """Graph, backward steps (in order), recurrences per hidden layer, gradients,
    and a forward-mode pass pushing e_j through the first weight's input."""
    names, values, loss, x = _network(spec)
    rec = tape.RecordedTape(loss, *values, names=names)
    graph = rec.describe()
    steps = []
    grads = {}
    for item in rec.backward_steps():
        if item["kind"] == "done":
            grads = item["grads"]
            break
        steps.append(item)
    # hidden layer l: its dense node (z(l)) and activation node (a(l)), in tape order
    dense_nodes = [n for n in graph["nodes"] if n["op"] == "dense"]
    by_index = {s["index"]: s for s in steps}
    recurrences = []
    for layer, node in enumerate(dense_nodes[:-1]):
        act_node = next(n for n in graph["nodes"] if n["id"] > node["id"]
                        and n["op"] not in ("dense", "input"))
        nxt = dense_nodes[layer + 1]
        z = rec.trace.nodes[node["id"]].ans
        delta_next = by_index[nxt["id"]]["cotangent_in"]
        W_next = values[2 * (layer + 1)]
        sigma_prime = network.layers(spec)[layer].activation.dphi(z, NUMPY)
        delta = (delta_next @ W_next) * sigma_prime  # δ(l) = (W(l+1)ᵀ δ(l+1)) ⊙ σ'(z(l))
        recurrences.append({"layer": layer + 1, "dense_node": node["id"],
                            "activation_node": act_node["id"], "W_next": W_next,
                            "delta_next": delta_next, "sigma_prime": sigma_prime,
                            "delta": delta, "delta_from_tape": by_index[node["id"]][
                                "cotangent_in"]})
    # forward mode: the tangent e_j on the input x, pushed layer by layer
    v = np.zeros_like(x)
    v[:, tangent_input % x.shape[1]] = 1.0
    forward = list(tape.RecordedTape(lambda xx: loss_of_input(spec, values, xx), x,
                                     names=["x"]).forward_steps({"x": v}))
    return {"graph": graph, "steps": steps, "recurrences": recurrences, "gradients": grads,
            "forward": forward, "input": x, "names": names,
            "jaxpr": _jaxpr(spec, graph, forward)}


def _jaxpr(spec: RunSpec, graph: dict, forward: list) -> dict | None:
    """The same passes as JAX's jaxprs (engines.jax_inspect); None without jax."""
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        return None
    from .jax_inspect import walk

    return walk(spec, graph, forward)


def loss_of_input(spec: RunSpec, values: list, x: Any) -> Any:
    return ops.sum(network.forward(network.layers(spec), TAPE_KERNELS, x, values))


def jacobian_modes(spec: RunSpec, repeats: int = 3,
                   check: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """The full input-output Jacobian by forward mode (n JVPs) and reverse mode
    (m VJPs) for the current network at one example: passes and measured time;
    `check()` between the passes (it raises to stop)."""
    params = init_params(spec)
    values = [p for pair in params for p in pair]
    x = batch(spec, 0)[0][:1]
    n, m = x.shape[1], spec.out_features
    net = network.layers(spec)

    def f(v):
        return ops.reshape(network.forward(net, TAPE_KERNELS, ops.reshape(v, (1, n)), values),
                           (m,))

    timings = {}
    results = {}
    for mode, transform in (("forward", tape.jacfwd), ("reverse", tape.jacrev)):
        best = float("inf")
        for _ in range(repeats):
            check()
            t0 = time.perf_counter()
            results[mode] = transform(f)(x[0])
            best = min(best, time.perf_counter() - t0)
        timings[mode] = best
    agree = float(np.max(np.abs(results["forward"] - results["reverse"])))
    return {"n_inputs": n, "n_outputs": m, "forward_passes": n, "reverse_passes": m,
            "forward_seconds": timings["forward"], "reverse_seconds": timings["reverse"],
            "predicted_ratio": n / m, "measured_ratio": timings["forward"] / timings["reverse"],
            "max_abs_difference": agree}
