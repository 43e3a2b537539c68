"""Tracing core: primitives, the reverse-mode tape and forward-mode tracers.

A `Primitive` applied to plain NumPy arrays just runs its `impl`. Applied to a
`Tracer`, it is handed to the tracer's trace: a `ReverseTrace` records a node
on its tape (primal values in, value out), a `JVPTrace` pushes a tangent along.
Traces are nested by level (autograd/JAX style), so a rule written in tape ops
is itself traced by an outer transformation: that is what makes
`grad(grad(f))` and `jacfwd(jacrev(f))` work to any order.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

_levels = itertools.count(1)


class MissingRuleError(NotImplementedError):
    """Raised when a primitive has no rule for the requested mode."""


class Primitive:
    """One operation with its implementation, JVP rule and VJP rule together."""

    __slots__ = ("name", "impl", "jvp_rules", "vjp")

    def __init__(self, name: str, impl: Callable[..., Any]):
        self.name = name
        self.impl = impl
        self.jvp_rules: tuple | None = None
        # vjp(g, ans, args, params, positions) -> list of cotangents, one per position
        self.vjp: Callable[..., list] | None = None

    def __call__(self, *args: Any, **params: Any) -> Any:
        top = None
        for a in args:
            if isinstance(a, Tracer):
                t = a._trace
                if top is None or t.level > top.level:
                    top = t
        if top is None:
            return self.impl(*args, **params)
        return top.process(self, args, params)

    def __repr__(self) -> str:
        return f"Primitive({self.name})"


def defvjp(prim: Primitive, *rules: Callable | None) -> None:
    """Register per-argument VJP rules `rule(g, ans, *args, **params)`."""

    def vjp(g, ans, args, params, positions):
        out = []
        for i in positions:
            rule = rules[i] if i < len(rules) else None
            if rule is None:
                raise MissingRuleError(
                    f"no VJP rule for '{prim.name}' with respect to argument {i}")
            out.append(rule(g, ans, *args, **params))
        return out

    prim.vjp = vjp


def defjvp(prim: Primitive, *rules: Callable | None) -> None:
    """Register per-argument JVP rules `rule(tangent, ans, *args, **params)`."""
    prim.jvp_rules = rules


# ---------------------------------------------------------------------------
# Memory and work accounting (thread-local, shared by nested traces)


@dataclass
class Meter:
    """Bytes of values saved on tapes live at once, and forward ops evaluated."""

    live_bytes: int = 0
    peak_bytes: int = 0
    forward_ops: int = 0

    def save(self, nbytes: int) -> None:
        self.live_bytes += nbytes
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes = self.live_bytes

    def free(self, nbytes: int) -> None:
        self.live_bytes -= nbytes


_local = threading.local()


def meter() -> Meter:
    m = getattr(_local, "meter", None)
    if m is None:
        m = _local.meter = Meter()
    return m


class metering:  # noqa: N801  (used like a function: `with metering() as m`)
    """Context manager: `with metering() as m: ...` then read m.peak_bytes."""

    def __enter__(self) -> Meter:
        self._old = getattr(_local, "meter", None)
        _local.meter = Meter()
        return _local.meter

    def __exit__(self, *exc: Any) -> None:
        _local.meter = self._old


def nbytes_of(x: Any) -> int:
    if type(x) is np.ndarray:
        return x.nbytes
    return getattr(primal_value(x), "nbytes", 8)


# ---------------------------------------------------------------------------
# Tracers


class Tracer:
    """A value being traced by one trace. Python operators dispatch to tape ops."""

    __slots__ = ("_trace",)
    __array_ufunc__ = None  # make `ndarray + tracer` defer to our reflected ops

    @property
    def shape(self) -> tuple:
        return np.shape(primal_value(self))

    @property
    def dtype(self) -> np.dtype:
        return primal_value(self).dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def nbytes(self) -> int:
        return primal_value(self).nbytes

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def T(self) -> Any:
        from . import ops

        return ops.transpose(self)

    # comparisons give plain boolean arrays: they are not differentiable
    def __gt__(self, o):
        return primal_value(self) > primal_value(o)

    def __lt__(self, o):
        return primal_value(self) < primal_value(o)

    def __ge__(self, o):
        return primal_value(self) >= primal_value(o)

    def __le__(self, o):
        return primal_value(self) <= primal_value(o)

    def __float__(self) -> float:
        return float(primal_value(self))


def _install_operators() -> None:
    from . import ops

    binary = {"add": ops.add, "sub": ops.sub, "mul": ops.mul, "truediv": ops.div,
              "matmul": ops.matmul, "pow": ops.power}
    for name, fn in binary.items():
        setattr(Tracer, f"__{name}__", lambda s, o, fn=fn: fn(s, o))
        setattr(Tracer, f"__r{name}__", lambda s, o, fn=fn: fn(o, s))
    Tracer.__neg__ = lambda s: ops.neg(s)
    Tracer.__getitem__ = lambda s, idx: ops.getitem(s, idx)


def primal_value(x: Any) -> Any:
    """Strip every level of tracing: the plain NumPy value underneath."""
    while isinstance(x, Tracer):
        x = x._value if isinstance(x, Box) else x._primal
    return x


# ---------------------------------------------------------------------------
# Reverse mode


class Node:
    """One tape entry: a primitive applied to primal values."""

    __slots__ = ("prim", "args", "params", "parents", "ans", "index", "tap")

    def __init__(self, prim, args, params, parents, ans, index):
        self.tap = None  # a key under which backward passes report this node's cotangent
        self.prim = prim  # None for an input (leaf)
        self.args = args
        self.params = params
        self.parents = parents  # [(argument position, parent Node)]
        self.ans = ans
        self.index = index


class Box(Tracer):
    """A value on a reverse-mode tape."""

    __slots__ = ("_value", "_node")

    def __init__(self, value, trace, node):
        self._value = value
        self._trace = trace
        self._node = node

    def __repr__(self) -> str:
        return f"Box(level={self._trace.level}, {self._value!r})"


class ReverseTrace:
    """A tape. With save=False it only evaluates (used for checkpointed segments)."""

    def __init__(self, save: bool = True):
        self.level = next(_levels)
        self.nodes: list[Node] = []
        self.save = save
        self.meter = meter()

    def new_input(self, value: Any) -> Box:
        # inputs belong to the caller: only values the tape produces count as saved
        node = Node(None, (), {}, [], value, len(self.nodes))
        if self.save:
            self.nodes.append(node)
        return Box(value, self, node)

    def process(self, prim: Primitive, args: tuple, params: dict) -> Box:
        vals = []
        parents = []
        lower = False  # do other (outer) traces see these values too?
        for i, a in enumerate(args):
            if isinstance(a, Tracer):
                if a._trace is self:
                    vals.append(a._value)
                    parents.append((i, a._node))
                    lower = lower or isinstance(a._value, Tracer)
                    continue
                lower = True
            vals.append(a)
        ans = prim(*vals, **params) if lower else prim.impl(*vals, **params)
        m = self.meter
        m.forward_ops += 1
        if not self.save:
            return Box(ans, self, None)
        node = Node(prim, vals, params, parents, ans, len(self.nodes))
        self.nodes.append(node)
        m.live_bytes += ans.nbytes if type(ans) is np.ndarray else nbytes_of(ans)
        if m.live_bytes > m.peak_bytes:
            m.peak_bytes = m.live_bytes
        return Box(ans, self, node)

    def release(self) -> None:
        """Drop every saved value (after a single-use backward pass)."""
        m = self.meter
        for node in self.nodes:
            if node.ans is not None and node.prim is not None:
                m.free(nbytes_of(node.ans))
            node.ans = None
            node.args = ()
        self.nodes = []


@dataclass
class BackwardStep:
    """What happens at one tape node during the backward pass."""

    index: int
    op: str
    input_shapes: list
    output_shape: tuple
    cotangent_in: Any
    cotangents_out: list  # [(parent node index, cotangent)]
    params: dict


def backward_pass(
    trace: ReverseTrace,
    seeds: list[tuple[Node, Any]],
    consume: bool = False,
    inspect: bool = False,
) -> Iterator[BackwardStep | list]:
    """Pull cotangents back through the tape, node by node in reverse order.

    Yields a `BackwardStep` for each node visited when `inspect` is set; the
    last item yielded is the list of cotangents indexed by node index (inputs
    keep theirs). `consume` frees each node's saved values once it is done.
    """
    from .ops import add

    nodes = trace.nodes
    cts: list = [None] * len(nodes)
    for node, ct in seeds:
        cts[node.index] = ct if cts[node.index] is None else add(cts[node.index], ct)
    start = max(node.index for node, _ in seeds)
    m = trace.meter
    for i in range(start, -1, -1):
        node = nodes[i]
        prim = node.prim
        if prim is None:
            continue
        g = cts[i]
        if g is not None:
            parents = node.parents
            if prim.vjp is None:
                raise MissingRuleError(f"no VJP rule for '{prim.name}'")
            positions = [p for p, _ in parents]
            outs = prim.vjp(g, node.ans, node.args, node.params, positions)
            for (_, parent), ct in zip(parents, outs, strict=True):
                j = parent.index
                cts[j] = ct if cts[j] is None else add(cts[j], ct)
            if node.tap is not None:
                report = _local.sink[1]
                if callable(report):  # told at once, while g is still in cache, with
                    # what this node passed back to each of its inputs (by position)
                    report(node.tap, g, dict(zip(positions, outs, strict=True)))
                else:
                    report[node.tap] = g
            if inspect:
                yield BackwardStep(
                    index=i,
                    op=prim.name,
                    input_shapes=[tuple(np.shape(primal_value(a))) for a in node.args],
                    output_shape=tuple(np.shape(primal_value(node.ans))),
                    cotangent_in=g,
                    cotangents_out=[(p.index, ct)
                                    for (_, p), ct in zip(parents, outs, strict=True)],
                    params=node.params,
                )
            cts[i] = None
        if consume and node.ans is not None:
            m.free(nbytes_of(node.ans))
            node.ans = None
            node.args = ()
    yield cts


def run_backward(trace, seeds, consume=False) -> list:
    """Drive `backward_pass` to the end and return the cotangents."""
    *_, cotangents = backward_pass(trace, seeds, consume=consume)
    return cotangents


def tap(x: Any, key: Any, cotangent: bool = True, value: bool = True) -> Any:
    """Mark an intermediate value: `value_and_grad_with_taps` reports its value
    (unless value=False) and its cotangent (unless cotangent=False) under `key`.
    Outside that transformation it does nothing."""
    sink = getattr(_local, "sink", None)
    if sink is not None:
        if not value:
            pass
        elif callable(sink[0]):
            sink[0](key, primal_value(x))
        else:
            sink[0][key] = primal_value(x)
        if cotangent and isinstance(x, Box) and x._node is not None:
            x._node.tap = key
    return x


class tapping:  # noqa: N801  (used like a function)
    """Collect tapped values and cotangents: `with tapping() as (values, cotangents)`.

    With `on_cotangent`, each tapped cotangent is handed to on_cotangent(key, g, sent)
    the moment the backward pass has finished it (and `cotangents` stays empty), with
    sent = {argument position: the cotangent this node passed to that input}: a
    consumer can reduce them while they are still in cache instead of keeping them.
    Likewise `on_value(key, value)` sees each tapped value as it is computed (and
    `values` stays empty), so the tape can free it as usual."""

    def __init__(self, on_cotangent: Callable[[Any, Any, dict], None] | None = None,
                 on_value: Callable[[Any, Any], None] | None = None):
        self._report = on_cotangent
        self._see = on_value

    def __enter__(self) -> tuple[Any, Any]:
        self._old = getattr(_local, "sink", None)
        _local.sink = ({} if self._see is None else self._see,
                       {} if self._report is None else self._report)
        return _local.sink

    def __exit__(self, *exc: Any) -> None:
        _local.sink = self._old


# ---------------------------------------------------------------------------
# Forward mode


class JVPTracer(Tracer):
    """A primal value with the tangent pushed along with it."""

    __slots__ = ("_primal", "_tangent")

    def __init__(self, trace, primal, tangent):
        self._trace = trace
        self._primal = primal
        self._tangent = tangent

    def __repr__(self) -> str:
        return f"JVPTracer(level={self._trace.level}, {self._primal!r})"


class JVPTrace:
    def __init__(self):
        self.level = next(_levels)

    def process(self, prim: Primitive, args: tuple, params: dict) -> JVPTracer:
        primals = []
        tangents = []
        for a in args:
            if isinstance(a, JVPTracer) and a._trace is self:
                primals.append(a._primal)
                tangents.append(a._tangent)
            else:
                primals.append(a)
                tangents.append(None)
        ans = prim(*primals, **params)
        rules = prim.jvp_rules
        if rules is None:
            raise MissingRuleError(f"no JVP rule for '{prim.name}'")
        from .ops import add

        out = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            rule = rules[i] if i < len(rules) else None
            if rule is None:
                raise MissingRuleError(
                    f"no JVP rule for '{prim.name}' with respect to argument {i}")
            contribution = rule(t, ans, *primals, **params)
            out = contribution if out is None else add(out, contribution)
        return JVPTracer(self, ans, out)
