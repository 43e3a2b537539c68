"""Python operators on traced values: `x + y`, `x @ W`, `x ** 2`, `-x`, `x[i]`, `x.T`
and `x.sum(axis)` apply the tape's primitives, so a function written with operators is
traced like one written with `ops` (the rules in ops.py are, in part).

`core.Tracer` is defined before any primitive exists (core imports no ops), so it
gets its operators here, from `install_operators()`, which the package calls once.
"""

from __future__ import annotations

from . import ops
from .core import Tracer


def install_operators() -> None:
    """Give every tracer (Box, JVPTracer) NumPy's arithmetic operators."""
    Tracer.__add__ = lambda x, y: ops.add(x, y)
    Tracer.__radd__ = lambda x, y: ops.add(y, x)
    Tracer.__sub__ = lambda x, y: ops.sub(x, y)
    Tracer.__rsub__ = lambda x, y: ops.sub(y, x)
    Tracer.__mul__ = lambda x, y: ops.mul(x, y)
    Tracer.__rmul__ = lambda x, y: ops.mul(y, x)
    Tracer.__truediv__ = lambda x, y: ops.div(x, y)
    Tracer.__rtruediv__ = lambda x, y: ops.div(y, x)
    Tracer.__matmul__ = lambda x, y: ops.matmul(x, y)
    Tracer.__rmatmul__ = lambda x, y: ops.matmul(y, x)
    Tracer.__pow__ = lambda x, y: ops.power(x, y)
    Tracer.__rpow__ = lambda x, y: ops.power(y, x)
    Tracer.__neg__ = lambda x: ops.neg(x)
    Tracer.__getitem__ = lambda x, index: ops.getitem(x, index)
    Tracer.T = property(lambda x: ops.transpose(x))
    Tracer.sum = lambda x, axis=None, keepdims=False: ops.sum(x, axis=axis, keepdims=keepdims)
