"""The backward stepper and the tape's JSON description."""

import json

import numpy as np

from backproplab import tape
from backproplab.tape import ops


def test_stepper_walks_every_node_and_reproduces_backprop():
    rng = np.random.default_rng(0)
    W1, b1 = rng.standard_normal((4, 3)), rng.standard_normal(4)
    W2, b2 = rng.standard_normal((2, 4)), rng.standard_normal(2)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))

    def loss(W1, b1, W2, b2):
        return ops.mse(ops.dense(ops.tanh(ops.dense(x, W1, b1)), W2, b2), y)

    rec = tape.RecordedTape(loss, W1, b1, W2, b2, names=["W1", "b1", "W2", "b2"])
    graph = rec.describe()
    json.dumps(graph)  # JSON-able
    ops_seen = [n["op"] for n in graph["nodes"]]
    assert ops_seen == ["input"] * 4 + ["dense", "tanh", "dense", "mse"]
    assert {"source": 4, "target": 5, "arg": 0} in graph["edges"]

    steps = list(rec.backward_steps())
    node_steps = [s for s in steps if s["kind"] == "node"]
    assert [s["op"] for s in node_steps] == ["mse", "dense", "tanh", "dense"]
    grads = steps[-1]["grads"]
    expected = tape.grad(loss, argnums=(0, 1, 2, 3))(W1, b1, W2, b2)
    for name, g in zip(["W1", "b1", "W2", "b2"], expected, strict=True):
        np.testing.assert_allclose(grads[name], g, rtol=1e-14)

    # hand recurrence: δ(2) = 2(ŷ−y)/N, δ(1) = (W2ᵀ δ(2)) ⊙ tanh'(z1)
    h = np.tanh(x @ W1.T + b1)
    delta2 = 2 * (h @ W2.T + b2 - y) / y.size
    delta1 = (delta2 @ W2) * (1 - h**2)
    tanh_step = node_steps[2]
    np.testing.assert_allclose(tanh_step["cotangent_in"], delta2 @ W2, rtol=1e-13)
    np.testing.assert_allclose(tanh_step["cotangents_out"][0]["value"], delta1, rtol=1e-13)


def test_forward_steps_push_a_tangent():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 2))
    x = rng.standard_normal((1, 2))
    rec = tape.RecordedTape(lambda x: ops.sum(ops.tanh(x @ W.T)), x, names=["x"])
    v = rng.standard_normal((1, 2))
    steps = list(rec.forward_steps({"x": v}))
    final = steps[-1]["tangent_out"]
    _, expected = tape.jvp(lambda x: ops.sum(ops.tanh(x @ W.T)), (x,), (v,))
    np.testing.assert_allclose(final, expected, rtol=1e-14)
