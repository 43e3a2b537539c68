"""Property tests: broadcasting and reductions, checked against closed forms."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backproplab import tape
from backproplab.tape import ops

floats = st.floats(-3, 3, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def broadcastable_pair(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                    max_side=4))
    a = draw(hnp.arrays(np.float64, shapes.input_shapes[0], elements=floats))
    b = draw(hnp.arrays(np.float64, shapes.input_shapes[1], elements=floats))
    return a, b


@settings(max_examples=60, deadline=None)
@given(broadcastable_pair())
def test_broadcast_mul_gradient_is_the_other_factor_summed(pair):
    a, b = pair
    ga, gb = tape.grad(lambda x, y: ops.sum(x * y), argnums=(0, 1))(a, b)
    full_a, full_b = np.broadcast_arrays(a, b)
    # d/da Σ a·b = Σ over the broadcast axes of b, shaped like a
    assert ga.shape == a.shape and gb.shape == b.shape
    lead = full_a.ndim - a.ndim
    expect_a = full_b.sum(axis=tuple(range(lead))) if lead else full_b
    expect_a = expect_a.sum(axis=tuple(i for i, s in enumerate(a.shape) if s == 1),
                            keepdims=True) if a.ndim else np.sum(expect_a)
    np.testing.assert_allclose(ga, np.reshape(expect_a, a.shape), rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                  elements=floats), st.data())
def test_reductions_gradients(x, data):
    axis = data.draw(st.one_of(st.none(), st.integers(0, x.ndim - 1)))
    keepdims = data.draw(st.booleans())
    g_sum = tape.grad(lambda v: ops.sum(ops.sum(v, axis=axis, keepdims=keepdims) ** 2))(x)
    s = np.sum(x, axis=axis, keepdims=True)
    np.testing.assert_allclose(g_sum, np.broadcast_to(2 * s, x.shape), rtol=1e-12, atol=1e-12)
    count = x.size if axis is None else x.shape[axis]
    g_mean = tape.grad(lambda v: ops.sum(ops.mean(v, axis=axis, keepdims=keepdims)))(x)
    np.testing.assert_allclose(g_mean, np.full(x.shape, 1.0 / count), rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(broadcastable_pair())
def test_jvp_equals_vjp_transpose(pair):
    a, b = pair
    f = lambda x, y: ops.tanh(x) * y + x
    out, vjp_fn = tape.vjp(f, a, b)
    rng = np.random.default_rng(0)
    u = rng.standard_normal(np.shape(out))
    ta, tb = rng.standard_normal(a.shape), rng.standard_normal(b.shape)
    _, jv = tape.jvp(f, (a, b), (ta, tb))
    ua, ub = vjp_fn(u)
    # ⟨u, J t⟩ = ⟨Jᵀu, t⟩
    np.testing.assert_allclose(np.vdot(u, jv), np.vdot(ua, ta) + np.vdot(ub, tb),
                               rtol=1e-10, atol=1e-10)
