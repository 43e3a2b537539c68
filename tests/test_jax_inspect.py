"""The stepper's jaxpr: JAX's trace of the same network, equation by equation, named
by the tape's nodes; checked against the tape's own numbers and against what the
passes must contain."""

import collections

import jax
import numpy as np
import pytest

from backproplab.engines import inspect as tape_inspect
from backproplab.engines import jax_inspect
from backproplab.model.spec import RunSpec


def spec_of(**kw):
    base = dict(depth=2, width=3, activation="tanh", dataset="xor", loss="mse",
                batch_size=2, seed=0, steps=0)
    return RunSpec(**{**base, **kw})


CASES = [dict(), dict(activation="relu", loss="cross_entropy"), dict(activation="gelu"),
         dict(activation="linear", depth=3), dict(depth=1, width=6, batch_size=4)]


@pytest.mark.parametrize("kw", CASES)
def test_the_traced_program_is_the_tapes_network(kw):
    """JAX's gradients and forward-mode tangent of the traced functions equal the
    tape walk's own (float64): the equations listed are those of the same network."""
    spec = spec_of(**kw)
    walk = tape_inspect.backprop_walk(spec)
    ops = [n["label"] for n in walk["graph"]["nodes"] if n["op"] != "input"]
    loss, summed, params, x = jax_inspect.programs(spec, ops,
                                                   [s["label"] for s in walk["forward"]])
    with jax.enable_x64(True):
        grads = jax.grad(loss)(params)
        v = np.zeros_like(x)
        v[:, 0] = 1.0
        tangent = jax.jvp(summed, (x,), (v,))[1]
    for g, name in zip(grads, walk["names"], strict=True):
        np.testing.assert_allclose(np.asarray(g), walk["gradients"][name], rtol=1e-12,
                                   atol=1e-15)
    np.testing.assert_allclose(float(tangent), float(np.sum(walk["forward"][-1]["tangent_out"])),
                               rtol=1e-12)


@pytest.mark.parametrize("kw", CASES)
def test_every_equation_is_named_by_a_tape_node_in_the_passes_order(kw):
    spec = spec_of(**kw)
    walk = tape_inspect.backprop_walk(spec)
    jx = walk["jaxpr"]
    assert jx["dtype"] == "float64"
    ops = [n["id"] for n in walk["graph"]["nodes"] if n["op"] != "input"]
    backward_nodes = [e["node"] for e in jx["backward"]]
    assert None not in backward_nodes
    # the backward pass visits the nodes from the loss back, as the tape's steps do
    seen = list(dict.fromkeys(backward_nodes))
    dense = [n["id"] for n in walk["graph"]["nodes"] if n["op"] == "dense"]
    assert seen[0] == ops[-1] and set(dense) <= set(seen)
    assert seen == [s["index"] for s in walk["steps"] if s["index"] in seen]
    forward_nodes = [e["node"] for e in jx["forward"]]
    assert None not in forward_nodes and forward_nodes == sorted(forward_nodes)
    assert forward_nodes[-1] == walk["forward"][-1]["index"]  # the sum


@pytest.mark.parametrize("kw", CASES)
def test_dense_nodes_hold_the_matmuls_backprop_needs(kw):
    """Backward: ∂W = δᵀa at every dense node and ∂a = δW at all but the first (the
    input is not differentiated, so JAX drops it): dot_generals 1, 2, 2, …; forward
    mode: one W·ṫ per dense node."""
    walk = tape_inspect.backprop_walk(spec_of(**kw))
    jx = walk["jaxpr"]
    dense = [n["id"] for n in walk["graph"]["nodes"] if n["op"] == "dense"]
    count = collections.Counter(e["node"] for e in jx["backward"]
                                if e["primitive"] == "dot_general")
    assert [count[d] for d in dense] == [1] + [2] * (len(dense) - 1)
    forward_dense = [s["index"] for s in walk["forward"] if s["op"] == "dense"]
    count = collections.Counter(e["node"] for e in jx["forward"]
                                if e["primitive"] == "dot_general")
    assert [count[d] for d in forward_dense] == [1] * len(forward_dense)
    assert sum(count.values()) == len(forward_dense)
    eq = next(e for e in jx["backward"] if e["primitive"] == "dot_general")
    assert eq["text"].split(" = ")[1].startswith("dot_general[dimension_numbers=")
    assert eq["scope"].startswith("transpose(jvp(dense#")


def test_without_jax_the_walk_says_so(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "jax" else real(name, *a))
    walk = tape_inspect.backprop_walk(spec_of())
    assert walk["jaxpr"] is None and walk["steps"]


def test_the_equations_depend_on_the_shape_only_so_one_trace_serves_each_shape():
    """Traced afresh (no cache) with other values, the equations are the same: the
    cache keyed by shape cannot hand a network another one's program."""
    def fresh(spec):
        jax_inspect._traced.cache_clear()
        return tape_inspect.backprop_walk(spec)["jaxpr"]

    b = fresh(spec_of(seed=7, sigma_w=2.5, sigma_b=0.3, init="he_normal"))
    a = fresh(spec_of(seed=0))
    assert a == b
    assert tape_inspect.backprop_walk(spec_of(seed=7, sigma_w=2.5))["jaxpr"] == a  # cached
    assert fresh(spec_of(width=4)) != a


def test_forward_mode_equations_carry_the_graphs_names_as_the_stepper_lights_them():
    """Forward mode runs on a tape of its own (dense#1 …, sum): its equations are named
    by the graph's node that the stepper lights for each of its steps, and Σ ŷ by sum."""
    walk = tape_inspect.backprop_walk(spec_of())
    ops = [n for n in walk["graph"]["nodes"] if n["op"] != "input"]
    for k, step in enumerate(walk["forward"]):
        scopes = {e["scope"] for e in walk["jaxpr"]["forward"] if e["node"] == step["index"]}
        name = ops[k]["label"] if k < len(ops) - 1 else "sum"
        assert scopes == {f"jvp({name})"} or (not scopes and step["op"] == "linear"), scopes
