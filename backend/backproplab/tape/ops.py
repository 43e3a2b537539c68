"""The tape's primitives. Each one: its NumPy impl, then its JVP and VJP rules.

Rules are written with these same ops, or with Python's operators (`g * y`,
`g @ W`, `g.T`, `g.sum(axis=0)`), which on tracers apply these ops: either way an
outer transformation traces them again (higher-order derivatives). Operators on
plain arrays are NumPy's own, in C: a first-order backward pass, whose cotangents
and saved values are arrays, runs the operator-written rules with no dispatch of
ours, which is most of its cost per node. Names follow JAX: `g` is the incoming
cotangent, `t` a tangent, `ans` the primal output.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.activations import ACTIVATIONS as _REGISTRY
from ..model.activations import LEAKY_SLOPE, SELU_ALPHA, SELU_SCALE
from ..model.special import erf as _erf
from .core import Primitive, defjvp, defvjp, jvp_rules, primal_value, vjp_rules


def _shape(x: Any) -> tuple:
    s = getattr(x, "shape", None)
    return s if s is not None else np.shape(x)


def unbroadcast(g: Any, shape: tuple) -> Any:
    """Sum a broadcast cotangent back down to `shape`."""
    gshape = _shape(g)
    if gshape == tuple(shape):
        return g
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and gshape[lead + i] != 1)
    return reshape(sum(g, axis=axes), shape) if axes else reshape(g, shape)


def _expand_to(t: Any, shape: tuple) -> Any:
    return t if _shape(t) == tuple(shape) else broadcast_to(t, shape)


# --- arithmetic -------------------------------------------------------------

add = Primitive("add", np.add)
defjvp(add, lambda t, ans, x, y: _expand_to(t, _shape(ans)),
       lambda t, ans, x, y: _expand_to(t, _shape(ans)))
defvjp(add, lambda g, ans, x, y: unbroadcast(g, _shape(x)),
       lambda g, ans, x, y: unbroadcast(g, _shape(y)))

sub = Primitive("sub", np.subtract)
defjvp(sub, lambda t, ans, x, y: _expand_to(t, _shape(ans)),
       lambda t, ans, x, y: _expand_to(-t, _shape(ans)))
defvjp(sub, lambda g, ans, x, y: unbroadcast(g, _shape(x)),
       lambda g, ans, x, y: unbroadcast(-g, _shape(y)))

mul = Primitive("mul", np.multiply)
defjvp(mul, lambda t, ans, x, y: _expand_to(t * y, _shape(ans)),
       lambda t, ans, x, y: _expand_to(x * t, _shape(ans)))
defvjp(mul, lambda g, ans, x, y: unbroadcast(g * y, _shape(x)),
       lambda g, ans, x, y: unbroadcast(g * x, _shape(y)))

div = Primitive("div", np.divide)
defjvp(div, lambda t, ans, x, y: _expand_to(t / y, _shape(ans)),
       lambda t, ans, x, y: _expand_to(-(t * ans / y), _shape(ans)))
defvjp(div, lambda g, ans, x, y: unbroadcast(g / y, _shape(x)),
       lambda g, ans, x, y: unbroadcast(-(g * ans / y), _shape(y)))

neg = Primitive("neg", np.negative)
defjvp(neg, lambda t, ans, x: -t)
defvjp(neg, lambda g, ans, x: -g)


def _pow_dx(x, y):
    # d/dx x**y = y * x**(y-1)
    return mul(y, power(x, sub(y, 1)))


def _pow_dy(ans, x):
    # d/dy x**y = log(x) * x**y, defined as 0 where x == 0 (0**y for y > 0)
    xv = primal_value(x)
    safe = where(xv > 0, x, 1.0)
    return mul(where(xv > 0, log(safe), 0.0), ans)


power = Primitive("pow", np.power)
defjvp(power, lambda t, ans, x, y: _expand_to(mul(t, _pow_dx(x, y)), _shape(ans)),
       lambda t, ans, x, y: _expand_to(mul(t, _pow_dy(ans, x)), _shape(ans)))
defvjp(power, lambda g, ans, x, y: unbroadcast(mul(g, _pow_dx(x, y)), _shape(x)),
       lambda g, ans, x, y: unbroadcast(mul(g, _pow_dy(ans, x)), _shape(y)))

exp = Primitive("exp", np.exp)
defjvp(exp, lambda t, ans, x: t * ans)
defvjp(exp, lambda g, ans, x: g * ans)

log = Primitive("log", np.log)
defjvp(log, lambda t, ans, x: t / x)
defvjp(log, lambda g, ans, x: g / x)

sqrt = Primitive("sqrt", np.sqrt)
defjvp(sqrt, lambda t, ans, x: t * 0.5 / ans)
defvjp(sqrt, lambda g, ans, x: g * 0.5 / ans)


# --- linear algebra and shapes ---------------------------------------------


def _mT(x):
    return swapaxes_last(x) if len(_shape(x)) >= 2 else x


def _matmul_vjp_x(g, ans, x, y):
    xs, ys, gs = _shape(x), _shape(y), _shape(g)
    if len(ys) == 1:  # (..., k) @ (k,) -> (...): gx[..., k] = g[...] y[k]
        return unbroadcast(mul(reshape(g, gs + (1,)), y), xs)
    if len(xs) == 1:  # (k,) @ (..., k, n) -> (..., n): gx[k] = Σ y[..., k, n] g[..., n]
        pulled = matmul(y, reshape(g, gs + (1,)))
        return unbroadcast(reshape(pulled, gs[:-1] + (xs[0],)), xs)
    return unbroadcast(matmul(g, _mT(y)), xs)


def _matmul_vjp_y(g, ans, x, y):
    xs, ys = _shape(x), _shape(y)
    if len(xs) == 1:  # (k,) @ (k, n): g y_kn = x_k g_n
        if len(ys) == 2:
            return mul(reshape(x, (xs[0], 1)), reshape(g, (1, ys[1])))
        return unbroadcast(mul(reshape(x, (xs[0], 1)), expand_row(g)), ys)
    if len(ys) == 1:  # (..., m, k) @ (k,) -> (..., m): g y_k = sum x_mk g_m
        return unbroadcast(reshape(matmul(_mT(x), reshape(g, _shape(g) + (1,))),
                                   _shape(g)[:-1] + (ys[0],)), ys)
    return unbroadcast(matmul(_mT(x), g), ys)


def expand_row(g):
    """(..., n) -> (..., 1, n)."""
    s = _shape(g)
    return reshape(g, s[:-1] + (1, s[-1]))


matmul = Primitive("matmul", np.matmul)
defjvp(matmul, lambda t, ans, x, y: t @ y, lambda t, ans, x, y: x @ t)
defvjp(matmul, _matmul_vjp_x, _matmul_vjp_y)


def _dense_impl(x, W, b):
    return x @ W.T + b


# dense(x, W, b) = x Wᵀ + b for a batch of row vectors x: (n, in), W: (out, in), b: (out,)
dense = Primitive("dense", _dense_impl)
defjvp(dense, lambda t, ans, x, W, b: t @ W.T,
       lambda t, ans, x, W, b: x @ t.T,
       lambda t, ans, x, W, b: _expand_to(t, _shape(ans)))
defvjp(dense, lambda g, ans, x, W, b: g @ W,  # the backward recurrence's Wᵀδ
       lambda g, ans, x, W, b: g.T @ x,  # ∇W = δ aᵀ summed over the batch
       lambda g, ans, x, W, b: g.sum(axis=0))  # ∇b = Σ δ


def _transpose_impl(x, axes=None):
    return np.asarray(x).transpose(axes)


def _inverse_axes(axes):
    return None if axes is None else tuple(np.argsort(axes))


transpose = Primitive("transpose", _transpose_impl)
defjvp(transpose, lambda t, ans, x, axes=None: transpose(t, axes=axes))
defvjp(transpose, lambda g, ans, x, axes=None: transpose(g, axes=_inverse_axes(axes)))


def swapaxes_last(x):
    n = len(_shape(x))
    axes = tuple(range(n - 2)) + (n - 1, n - 2)
    return transpose(x, axes=axes)


def _reshape_impl(x, shape):
    return np.asarray(x).reshape(shape)


reshape = Primitive("reshape", _reshape_impl)
defjvp(reshape, lambda t, ans, x, shape: reshape(t, shape))
defvjp(reshape, lambda g, ans, x, shape: reshape(g, _shape(x)))


def _broadcast_impl(x, shape):
    return np.broadcast_to(x, shape)


broadcast_to = Primitive("broadcast", _broadcast_impl)
defjvp(broadcast_to, lambda t, ans, x, shape: broadcast_to(t, shape))
defvjp(broadcast_to, lambda g, ans, x, shape: unbroadcast(g, _shape(x)))


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(a % ndim for a in axis)


def _sum_impl(x, axis=None, keepdims=False):
    return np.add.reduce(x, axis=axis, keepdims=keepdims)  # np.sum minus its Python wrapper


def _restore(g, x, axis, keepdims):
    """Undo a reduction's shape: reshape g to keepdims form and broadcast to x."""
    xs = _shape(x)
    if not keepdims:
        axes = _norm_axes(axis, len(xs))
        g = reshape(g, tuple(1 if i in axes else s for i, s in enumerate(xs)))
    return broadcast_to(g, xs)


sum = Primitive("sum", _sum_impl)  # noqa: A001  (the op's name, as in JAX)
defjvp(sum, lambda t, ans, x, axis=None, keepdims=False: sum(t, axis=axis, keepdims=keepdims))
defvjp(sum, lambda g, ans, x, axis=None, keepdims=False: _restore(g, x, axis, keepdims))


def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Mean over axes: sum divided by the count (composite)."""
    xs = _shape(x)
    count = int(np.prod([xs[a] for a in _norm_axes(axis, len(xs))]))
    return div(sum(x, axis=axis, keepdims=keepdims), count)


def _getitem_impl(x, index):
    return x[index]


def _scatter_impl(g, index, shape):
    out = np.zeros(shape, dtype=np.asarray(g).dtype)
    np.add.at(out, index, g)
    return out


getitem = Primitive("getitem", _getitem_impl)
scatter_add = Primitive("scatter_add", _scatter_impl)
defjvp(getitem, lambda t, ans, x, index: getitem(t, index))
defvjp(getitem, lambda g, ans, x, index: scatter_add(g, index=index, shape=_shape(x)))
defjvp(scatter_add, lambda t, ans, g, index, shape: scatter_add(t, index=index, shape=shape))
defvjp(scatter_add, lambda c, ans, g, index, shape: getitem(c, index=index))


def _stack_impl(*xs, axis=0):
    return np.stack(xs, axis=axis)


# stack is variadic, so its rules see every argument at once
stack_p = Primitive("stack", _stack_impl)


def _stack_jvp(tangents, ans, primals, params):
    # the tangent of a stack is the stack of the tangents, zeros where there are none
    parts = [zeros_like(x) if t is None else t for t, x in zip(tangents, primals, strict=True)]
    return stack_p(*parts, axis=params.get("axis", 0))


def _stack_vjp(g, ans, primals, params, positions):
    # the cotangent of stacked argument i is slice i of g along the stacking axis
    axis = params.get("axis", 0)
    return [take(g, i, axis) for i in positions]


jvp_rules[stack_p] = _stack_jvp
vjp_rules[stack_p] = _stack_vjp


def take(g, i, axis):
    index = (slice(None),) * (axis % len(_shape(g))) + (i,)
    return getitem(g, index)


def stack(xs: list, axis: int = 0) -> Any:
    return stack_p(*xs, axis=axis)


def zeros_like(x: Any) -> np.ndarray:
    v = primal_value(x)
    return np.zeros(np.shape(v), dtype=getattr(v, "dtype", np.float64))


def _maximum_mask(x, y):
    # ties share the gradient equally, as in PyTorch
    xv, yv = primal_value(x), primal_value(y)
    dtype = np.result_type(xv, yv)
    return ((xv > yv) + 0.5 * (xv == yv)).astype(dtype)


maximum = Primitive("maximum", np.maximum)
defjvp(maximum, lambda t, ans, x, y: mul(t, _maximum_mask(x, y)),
       lambda t, ans, x, y: mul(t, _maximum_mask(y, x)))
defvjp(maximum, lambda g, ans, x, y: unbroadcast(mul(g, _maximum_mask(x, y)), _shape(x)),
       lambda g, ans, x, y: unbroadcast(mul(g, _maximum_mask(y, x)), _shape(y)))


def _where_impl(cond, x, y):
    return np.where(cond, x, y)


where = Primitive("where", _where_impl)
defjvp(where, None, lambda t, ans, c, x, y: _expand_to(where(c, t, 0.0), _shape(ans)),
       lambda t, ans, c, x, y: _expand_to(where(c, 0.0, t), _shape(ans)))
defvjp(where, None, lambda g, ans, c, x, y: unbroadcast(where(c, g, 0.0), _shape(x)),
       lambda g, ans, c, x, y: unbroadcast(where(c, 0.0, g), _shape(y)))


# --- activations --------------------------------------------------------------

tanh = Primitive("tanh", np.tanh)
defjvp(tanh, lambda t, ans, x: t * (1.0 - ans * ans))
defvjp(tanh, lambda g, ans, x: g * (1.0 - ans * ans))


def _sigmoid_impl(x):
    # stable: exp of a non-positive number only
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.result_type(x), copy=False)


sigmoid = Primitive("sigmoid", _sigmoid_impl)
defjvp(sigmoid, lambda t, ans, x: t * (ans * (1.0 - ans)))
defvjp(sigmoid, lambda g, ans, x: g * (ans * (1.0 - ans)))


def _positive(x):
    xv = primal_value(x)
    return (xv > 0).astype(xv.dtype)


relu = Primitive("relu", lambda x: np.maximum(x, 0).astype(np.result_type(x), copy=False))
defjvp(relu, lambda t, ans, x: t * _positive(x))
defvjp(relu, lambda g, ans, x: g * _positive(x))


def _leaky_slope(x, slope):
    xv = primal_value(x)
    return np.where(xv > 0, 1.0, slope).astype(xv.dtype)


leaky_relu = Primitive("leaky_relu",
                       lambda x, slope=LEAKY_SLOPE: np.where(x > 0, x, slope * x))
defjvp(leaky_relu, lambda t, ans, x, slope=LEAKY_SLOPE: t * _leaky_slope(x, slope))
defvjp(leaky_relu, lambda g, ans, x, slope=LEAKY_SLOPE: g * _leaky_slope(x, slope))


def _elu_impl(x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _elu_deriv(ans, x, alpha):
    # x > 0: 1;  x <= 0: alpha*exp(x) = ans + alpha
    return where(primal_value(x) > 0, 1.0, add(ans, alpha))


elu = Primitive("elu", _elu_impl)
defjvp(elu, lambda t, ans, x, alpha=1.0: t * _elu_deriv(ans, x, alpha))
defvjp(elu, lambda g, ans, x, alpha=1.0: g * _elu_deriv(ans, x, alpha))

def selu(x: Any) -> Any:
    """SELU = scale · elu(x, alpha) with the self-normalizing constants."""
    return mul(elu(x, alpha=SELU_ALPHA), SELU_SCALE)


erf = Primitive("erf", _erf)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
defjvp(erf, lambda t, ans, x: mul(t, mul(_TWO_OVER_SQRT_PI, exp(neg(mul(x, x))))))
defvjp(erf, lambda g, ans, x: mul(g, mul(_TWO_OVER_SQRT_PI, exp(neg(mul(x, x))))))

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_impl(x):
    return 0.5 * x * (1.0 + _erf(x * _INV_SQRT2))


def _gelu_deriv(x):
    # gelu'(x) = Φ(x) + x φ(x)
    cdf = mul(0.5, add(1.0, erf(mul(x, _INV_SQRT2))))
    pdf = mul(_INV_SQRT_2PI, exp(mul(-0.5, mul(x, x))))
    return add(cdf, mul(x, pdf))


gelu = Primitive("gelu", _gelu_impl)  # exact (erf) GELU, as torch's default
defjvp(gelu, lambda t, ans, x: t * _gelu_deriv(x))
defvjp(gelu, lambda g, ans, x: g * _gelu_deriv(x))


def _silu_deriv(x):
    # silu'(x) = s + x s (1 - s), s = sigmoid(x)
    s = sigmoid(x)
    return add(s, mul(x, mul(s, sub(1.0, s))))


silu = Primitive("silu", lambda x: x * _sigmoid_impl(x))
defjvp(silu, lambda t, ans, x: t * _silu_deriv(x))
defvjp(silu, lambda g, ans, x: g * _silu_deriv(x))


def _softplus_impl(x):
    return np.logaddexp(0.0, x).astype(np.result_type(x), copy=False)


softplus = Primitive("softplus", _softplus_impl)
defjvp(softplus, lambda t, ans, x: t * sigmoid(x))
defvjp(softplus, lambda g, ans, x: g * sigmoid(x))


def linear(x: Any) -> Any:
    return x


def _log_softmax_impl(x, axis=-1):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


log_softmax = Primitive("log_softmax", _log_softmax_impl)
defjvp(log_softmax, lambda t, ans, x, axis=-1:
       sub(t, sum(mul(exp(ans), t), axis=axis, keepdims=True)))
defvjp(log_softmax, lambda g, ans, x, axis=-1:
       sub(g, mul(exp(ans), sum(g, axis=axis, keepdims=True))))


# --- losses -------------------------------------------------------------------


def _mse_impl(pred, target):
    diff = pred - target
    return np.mean(diff * diff)


def _mse_grad(g, pred, target):
    # g · d/dpred mean((pred - target)²) = g · 2 (pred - target) / N (g: a scalar)
    return (pred - target) * (g * (2.0 / math.prod(_shape(pred))))


mse = Primitive("mse", _mse_impl)
defjvp(mse, lambda t, ans, p, y: sum(_mse_grad(1.0, p, y) * t),
       lambda t, ans, p, y: -sum(_mse_grad(1.0, p, y) * t))
defvjp(mse, lambda g, ans, p, y: _mse_grad(g, p, y),
       lambda g, ans, p, y: -_mse_grad(g, p, y))


def one_hot(labels: np.ndarray, classes: int, dtype: Any) -> np.ndarray:
    out = np.zeros((len(labels), classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def _ce_impl(logits, labels):
    lsm = _log_softmax_impl(logits, axis=-1)
    return -np.mean(lsm[np.arange(len(labels)), labels])


def _ce_grad(logits, labels):
    # the simplified output error: δ(L) = (softmax(z) − onehot(y)) / N
    n, classes = _shape(logits)
    softmax = exp(log_softmax(logits, axis=-1))
    onehot = one_hot(labels, classes, primal_value(logits).dtype)
    return (softmax - onehot) / n


softmax_cross_entropy = Primitive("softmax_cross_entropy", _ce_impl)
defjvp(softmax_cross_entropy, lambda t, ans, z, labels: sum(t * _ce_grad(z, labels)))
defvjp(softmax_cross_entropy, lambda g, ans, z, labels: g * _ce_grad(z, labels))


# the tape's activations, from the registry (backproplab.model.activations): each
# record names its primitive here
ACTIVATIONS = {name: globals()[a.tape] for name, a in _REGISTRY.items()}
