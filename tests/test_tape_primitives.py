"""One row per primitive: JVP and VJP against central differences, to order 2."""

import numpy as np
import pytest

from backproplab import tape
from backproplab.tape import ops
from backproplab.tape.testing import check_grads

rng = np.random.default_rng(42)


def away_from_zero(shape):
    """Values with |x| >= 0.2, so kinked functions are checked off their kink."""
    x = rng.uniform(0.2, 1.5, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


A = away_from_zero((3, 4))
B = away_from_zero((3, 4))
POS = rng.uniform(0.5, 2.0, size=(3, 4))
ROW = away_from_zero((4,))
M1 = rng.standard_normal((3, 5))
M2 = rng.standard_normal((5, 2))
LABELS = np.array([0, 2, 1])

CASES = [
    ("add", lambda x, y: ops.add(x, y), (A, B)),
    ("add-broadcast", lambda x, y: ops.add(x, y), (A, ROW)),
    ("sub", lambda x, y: ops.sub(x, y), (A, ROW)),
    ("mul", lambda x, y: ops.mul(x, y), (A, B)),
    ("mul-broadcast", lambda x, y: x * y, (A, ROW)),
    ("div", lambda x, y: ops.div(x, y), (A, POS)),
    ("neg", lambda x: ops.neg(x), (A,)),
    ("pow-const", lambda x: ops.power(x, 3.0), (A,)),
    ("pow-both", lambda x, y: ops.power(x, y), (POS, B)),
    ("exp", lambda x: ops.exp(x), (A,)),
    ("log", lambda x: ops.log(x), (POS,)),
    ("sqrt", lambda x: ops.sqrt(x), (POS,)),
    ("matmul", lambda x, y: ops.matmul(x, y), (M1, M2)),
    ("matmul-vec-right", lambda x, y: x @ y, (M1, rng.standard_normal(5))),
    ("matmul-vec-left", lambda x, y: x @ y, (rng.standard_normal(3), M1)),
    ("dense", lambda x, W, b: ops.dense(x, W, b), (M1, rng.standard_normal((2, 5)),
                                                     rng.standard_normal(2))),
    ("transpose", lambda x: ops.transpose(x), (A,)),
    ("transpose-axes", lambda x: ops.transpose(x, axes=(2, 0, 1)),
     (rng.standard_normal((2, 3, 4)),)),
    ("reshape", lambda x: ops.reshape(x, (2, 6)), (A,)),
    ("broadcast", lambda x: ops.broadcast_to(x, (3, 4)), (ROW,)),
    ("sum-all", lambda x: ops.sum(x), (A,)),
    ("sum-axis0", lambda x: ops.sum(x, axis=0), (A,)),
    ("sum-keepdims", lambda x: ops.sum(x, axis=1, keepdims=True), (A,)),
    ("mean", lambda x: ops.mean(x, axis=1), (A,)),
    ("maximum", lambda x, y: ops.maximum(x, y), (A, B)),
    ("where", lambda x, y: ops.where(A > 0, x, y), (A, B)),
    ("getitem", lambda x: x[1:, ::2], (A,)),
    ("scatter_add", lambda g: ops.scatter_add(g, index=(slice(1, None), slice(None, None, 2)),
                                              shape=(3, 4)), (away_from_zero((2, 2)),)),
    ("stack", lambda x, y: ops.stack([x, y], axis=1), (A, B)),
    ("tanh", lambda x: ops.tanh(x), (A,)),
    ("sigmoid", lambda x: ops.sigmoid(x), (A,)),
    ("relu", lambda x: ops.relu(x), (A,)),
    ("leaky_relu", lambda x: ops.leaky_relu(x, slope=0.1), (A,)),
    ("elu", lambda x: ops.elu(x), (A,)),
    ("selu", lambda x: ops.selu(x), (A,)),
    ("gelu", lambda x: ops.gelu(x), (A,)),
    ("silu", lambda x: ops.silu(x), (A,)),
    ("softplus", lambda x: ops.softplus(x), (A,)),
    ("erf", lambda x: ops.erf(x), (A,)),
    ("log_softmax", lambda x: ops.log_softmax(x), (A,)),
    ("mse", lambda x, y: ops.mse(x, y), (A, B)),
    ("softmax_cross_entropy", lambda z: ops.softmax_cross_entropy(z, LABELS), (A,)),
    ("checkpoint", lambda x, y: tape.checkpoint(lambda u, v: ops.tanh(u) * v, x, y), (A, B)),
]


@pytest.mark.parametrize("name,f,args", CASES, ids=[c[0] for c in CASES])
def test_primitive_against_finite_differences(name, f, args):
    check_grads(f, args, order=2, modes=("fwd", "rev"), eps=1e-6, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_inputs(dtype):
    x = A.astype(dtype)
    for act in ops.ACTIVATIONS.values():
        out, g = tape.value_and_grad(lambda v, act=act: ops.sum(act(v) * v))(x)
        assert np.asarray(out).dtype == dtype
        assert g.dtype == dtype


def test_cross_entropy_output_error_is_softmax_minus_onehot():
    z = rng.standard_normal((4, 3))
    labels = np.array([2, 0, 1, 1])
    g = tape.grad(lambda z: ops.softmax_cross_entropy(z, labels))(z)
    softmax = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g, (softmax - np.eye(3)[labels]) / 4, rtol=1e-13, atol=1e-15)


def test_log_softmax_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0, -1000.0]])
    out = ops.log_softmax(z)
    np.testing.assert_allclose(out, [[0.0, -1000.0, -2000.0]])


def test_missing_rule_names_op_and_mode():
    prim = tape.Primitive("mystery", np.sin)
    with pytest.raises(tape.MissingRuleError, match="VJP rule for 'mystery'"):
        tape.grad(lambda x: ops.sum(prim(x)))(A)
    with pytest.raises(tape.MissingRuleError, match="JVP rule for 'mystery'"):
        tape.jvp(prim, (A,), (A,))


def test_missing_rule_for_one_argument_names_it():
    # where(c, x, y) is not differentiable in its condition
    with pytest.raises(tape.MissingRuleError, match="VJP rule for 'where' with respect to "
                                                    "argument 0"):
        tape.grad(lambda c: ops.sum(ops.where(c, A, B)))(A > 0)
    with pytest.raises(tape.MissingRuleError, match="JVP rule for 'where' with respect to "
                                                    "argument 0"):
        tape.jvp(lambda c: ops.where(c, A, B), (A > 0,), (np.ones_like(A),))


def test_python_operators_trace():
    f = lambda x, y: ops.sum((-(x * y) + x / y - 2.0 ** x + x ** 2 - 1.0) @ np.ones(4))
    check_grads(f, (A, POS), order=2)


def test_pytree_gradients_keep_structure():
    params = {"layers": [(M2.T.copy(), np.zeros(2))], "scale": np.array(1.5)}

    def loss(p, x):
        W, b = p["layers"][0]
        return ops.sum(ops.tanh(ops.dense(x, W, b)) * p["scale"])

    g = tape.grad(loss)(params, M1)
    assert isinstance(g, dict) and isinstance(g["layers"], list)
    assert isinstance(g["layers"][0], tuple)
    assert g["layers"][0][0].shape == (2, 5) and g["scale"].shape == ()
    # closed form for the scale: d/ds Σ s·tanh(z) = Σ tanh(z)
    np.testing.assert_allclose(g["scale"], np.tanh(M1 @ M2 + 0).sum(), rtol=1e-12)


def test_higher_order_derivatives_of_tanh_closed_form():
    x = np.array([0.3, -0.7])
    d1 = tape.grad(lambda v: ops.sum(ops.tanh(v)))
    d2 = tape.grad(lambda v: ops.sum(d1(v)))
    d3 = tape.grad(lambda v: ops.sum(d2(v)))
    t = np.tanh(x)
    np.testing.assert_allclose(d1(x), 1 - t**2, rtol=1e-13)
    np.testing.assert_allclose(d2(x), -2 * t * (1 - t**2), rtol=1e-13)
    np.testing.assert_allclose(d3(x), (1 - t**2) * (6 * t**2 - 2), rtol=1e-12)


def test_jacobians_all_orders_agree():
    f = lambda x: ops.tanh(x) * ops.sum(x**2)
    x = np.array([0.2, -0.4, 0.9])
    np.testing.assert_allclose(tape.jacrev(f)(x), tape.jacfwd(f)(x), rtol=1e-13)
    h1 = tape.jacfwd(tape.jacrev(f))(x)
    h2 = tape.jacrev(tape.jacrev(f))(x)
    h3 = tape.jacrev(tape.jacfwd(f))(x)
    assert h1.shape == (3, 3, 3)
    np.testing.assert_allclose(h1, h2, rtol=1e-12)
    np.testing.assert_allclose(h1, h3, rtol=1e-12)
