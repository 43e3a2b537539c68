"""Checkpointing, clipping and gradient accumulation."""

import numpy as np
import pytest

from backproplab import tape
from backproplab.tape import ops


def chain(depth, width, rng):
    Ws = [rng.standard_normal((width, width)) / np.sqrt(width) for _ in range(depth)]
    bs = [0.1 * rng.standard_normal(width) for _ in range(depth)]
    return Ws, bs


def layer(h, p, index=None):
    W, b = p
    return ops.tanh(ops.dense(h, W, b))


def plain_loss(params, x):
    h = x
    for p in zip(*params, strict=True):
        h = layer(h, p)
    return ops.sum(h * h)


def checkpointed_loss(params, x, segments=10):
    h = tape.checkpoint_sequential(layer, list(zip(*params, strict=True)), x, segments)
    return ops.sum(h * h)


def test_checkpointing_bounds_memory_and_adds_one_forward_pass():
    rng = np.random.default_rng(0)
    depth, width, batch = 100, 64, 32
    params = chain(depth, width, rng)
    x = rng.standard_normal((batch, width))
    layer_bytes = x.nbytes  # one activation of one layer

    with tape.metering() as m_plain:
        g_plain = tape.grad(plain_loss)(params, x)
    with tape.metering() as m_ckpt:
        g_ckpt = tape.grad(checkpointed_loss)(params, x)

    # un-checkpointed: every layer's dense and tanh outputs stay on the tape
    assert m_plain.peak_bytes >= 2 * depth * layer_bytes
    # checkpointed: 10 segment inputs + one recomputed segment of 10 layers
    ckpt_activations = m_ckpt.peak_bytes
    plain_activations = m_plain.peak_bytes
    # each layer saves two activations (dense and tanh outputs): 20 layers' worth at most
    assert ckpt_activations <= 20 * 2 * layer_bytes
    assert plain_activations >= 100 * 2 * layer_bytes
    # exactly one extra forward pass (the final loss ops are not in a segment)
    layer_ops = 2 * depth
    assert m_plain.forward_ops == layer_ops + 2
    assert m_ckpt.forward_ops == 2 * layer_ops + 2
    for a, b in zip(tape.tree_flatten(g_plain)[0], tape.tree_flatten(g_ckpt)[0], strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit


def test_checkpoint_inside_higher_order():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((3, 3)) / 2
    f = lambda x: ops.sum(tape.checkpoint(lambda h: ops.tanh(h @ W), x) ** 2)
    g = lambda x: ops.sum(ops.tanh(x @ W) ** 2)
    x = rng.standard_normal(3)
    np.testing.assert_allclose(tape.hessian(f)(x), tape.hessian(g)(x), rtol=1e-12)


def test_clip_by_global_norm():
    grads = [np.array([3.0, 0.0]), {"b": np.array([[4.0]])}]
    clipped, norm = tape.clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(clipped[0], [0.6, 0.0])
    np.testing.assert_allclose(clipped[1]["b"], [[0.8]])
    same, _ = tape.clip_by_global_norm(grads, 10.0)
    assert same is grads
    inf_grads = [np.array([np.inf, 1.0])]
    passed, norm = tape.clip_by_global_norm(inf_grads, 1.0)
    assert np.isinf(norm) and passed is inf_grads


@pytest.mark.parametrize("k", [1, 2, 3, 7])
def test_accumulation_equals_full_batch(k):
    rng = np.random.default_rng(2)
    params = chain(3, 5, rng)
    x = rng.standard_normal((20, 5))
    y = rng.standard_normal((20, 5))

    def loss(p, xb, yb):
        h = xb
        for q in zip(*p, strict=True):
            h = layer(h, q)
        return ops.mse(h, yb)

    full_loss, full = tape.value_and_grad(loss)(params, x, y)
    acc_loss, acc = tape.accumulate_gradients(loss, params, (x, y), k)
    assert acc_loss == pytest.approx(float(full_loss), rel=1e-12)
    for a, b in zip(tape.tree_flatten(full)[0], tape.tree_flatten(acc)[0], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
