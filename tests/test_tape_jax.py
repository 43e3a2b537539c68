"""The tape's transformations against JAX's, on every row of the primitive table
(tests/test_tape_primitives.py), in float64 to 1e-10: grad, jvp, vjp, jacfwd,
jacrev, hessian and a third-order derivative (reverse over forward over reverse).

Each row of the table is reused as it is (its tape function and its arguments);
the only thing written here is the same function in jax.numpy, one per row."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf as jax_erf

from backproplab import tape
from backproplab.tape import ops
from test_tape_primitives import CASES, LABELS, A

RTOL = 1e-10

JAX_OF = {
    "add": jnp.add, "add-broadcast": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply,
    "mul-broadcast": jnp.multiply, "div": jnp.divide, "neg": jnp.negative,
    "pow-const": lambda x: jnp.power(x, 3.0), "pow-both": jnp.power,
    "exp": jnp.exp, "log": jnp.log, "sqrt": jnp.sqrt,
    "matmul": jnp.matmul, "matmul-vec-right": jnp.matmul, "matmul-vec-left": jnp.matmul,
    "dense": lambda x, W, b: x @ W.T + b,
    "transpose": jnp.transpose, "transpose-axes": lambda x: jnp.transpose(x, (2, 0, 1)),
    "reshape": lambda x: jnp.reshape(x, (2, 6)),
    "broadcast": lambda x: jnp.broadcast_to(x, (3, 4)),
    "sum-all": jnp.sum, "sum-axis0": lambda x: jnp.sum(x, axis=0),
    "sum-keepdims": lambda x: jnp.sum(x, axis=1, keepdims=True),
    "mean": lambda x: jnp.mean(x, axis=1), "maximum": jnp.maximum,
    "where": lambda x, y: jnp.where(A > 0, x, y), "getitem": lambda x: x[1:, ::2],
    "scatter_add": lambda g: jnp.zeros((3, 4), g.dtype).at[1:, ::2].add(g),
    "stack": lambda x, y: jnp.stack([x, y], axis=1),
    "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.1), "elu": jax.nn.elu,
    "selu": jax.nn.selu, "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "silu": jax.nn.silu, "softplus": jax.nn.softplus, "erf": jax_erf,
    "log_softmax": jax.nn.log_softmax, "mse": lambda x, y: jnp.mean((x - y) ** 2),
    "softmax_cross_entropy": lambda z: -jnp.mean(
        jax.nn.log_softmax(z)[jnp.arange(len(LABELS)), LABELS]),
    "checkpoint": lambda x, y: jax.checkpoint(lambda u, v: jnp.tanh(u) * v)(x, y),
}
IDS = [c[0] for c in CASES]


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):  # scoped: other tests in this process keep float32 JAX
        yield


def same(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, what
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def directions(args, seed):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(np.shape(a)) for a in args)


def scalarized(f, out_shape, seed, sum_op):
    """s(args) = Σ c ⊙ f(args) for a fixed random c: a scalar with every output in it."""
    c = np.random.default_rng(seed).standard_normal(out_shape)
    return lambda *args: sum_op(f(*args) * c)


def test_every_row_of_the_table_has_a_jax_function():
    assert set(JAX_OF) == set(IDS)


@pytest.mark.parametrize("name,f,args", CASES, ids=IDS)
def test_values_vjp_and_jvp_equal_jax(name, f, args):
    g = JAX_OF[name]
    same(f(*args), g(*args), "value")
    out, vjp_fn = tape.vjp(f, *args)
    jout, jvp_fn = jax.vjp(g, *args)
    cotangent = directions([out], 1)[0]
    for k, (got, want) in enumerate(zip(vjp_fn(cotangent), jvp_fn(cotangent), strict=True)):
        same(got, want, f"vjp, argument {k}")
    tangents = directions(args, 2)
    _, t_out = tape.jvp(f, args, tangents)
    _, jt_out = jax.jvp(g, args, tangents)
    same(t_out, jt_out, "jvp")


@pytest.mark.parametrize("name,f,args", CASES, ids=IDS)
def test_grad_jacobians_and_hessian_equal_jax(name, f, args):
    g = JAX_OF[name]
    out_shape = np.shape(f(*args))
    s_tape = scalarized(f, out_shape, 3, ops.sum)
    s_jax = scalarized(g, out_shape, 3, jnp.sum)
    argnums = tuple(range(len(args)))
    for got, want in zip(tape.grad(s_tape, argnums)(*args),
                         jax.grad(s_jax, argnums)(*args), strict=True):
        same(got, want, "grad")
    for k in argnums:
        same(tape.jacrev(f, k)(*args), jax.jacrev(g, k)(*args), f"jacrev, argument {k}")
        same(tape.jacfwd(f, k)(*args), jax.jacfwd(g, k)(*args), f"jacfwd, argument {k}")
    same(tape.hessian(s_tape)(*args), jax.hessian(s_jax)(*args), "hessian")


@pytest.mark.parametrize("name,f,args", CASES, ids=IDS)
def test_third_derivative_equals_jax(name, f, args):
    """∇ₓ ⟨w, ∂²s(x)[u]⟩: the third derivative of the scalarized function contracted
    with two directions, as reverse over forward over reverse, in both libraries."""
    g = JAX_OF[name]
    out_shape = np.shape(f(*args))
    s_tape = scalarized(f, out_shape, 4, ops.sum)
    s_jax = scalarized(g, out_shape, 4, jnp.sum)
    rest = args[1:]
    u, w = directions(args[:1], 5)[0], directions(args[:1], 6)[0]

    def third_tape(x):
        _, hvp = tape.jvp(lambda v: tape.grad(s_tape)(v, *rest), (x,), (u,))
        return ops.sum(hvp * w)

    def third_jax(x):
        _, hvp = jax.jvp(lambda v: jax.grad(s_jax)(v, *rest), (x,), (u,))
        return jnp.sum(hvp * w)

    same(tape.grad(third_tape)(args[0]), jax.grad(third_jax)(args[0]), "third order")
