"""Tracing core: primitives, one rule table per transformation, the reverse-mode
tape and forward-mode tracers.

A `Primitive` applied to plain NumPy values just runs its `impl`. Applied to a
`Tracer`, it is handed to the innermost trace among its arguments: a
`ReverseTrace` records a node on its tape (primal values in, primal value out), a
`JVPTrace` pushes a tangent along. Traces are nested by level (autograd/JAX
style), so a rule written in tape primitives is itself traced by an outer
transformation: that is what makes `grad(grad(f))` and `jacfwd(jacrev(f))` work
to any order.

This module knows no particular primitive. Cotangents and tangents are summed
with `+`: NumPy's add on plain arrays, the `add` primitive on tracers (their
Python operators come from `operators.py`).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_levels = itertools.count(1)


class MissingRuleError(NotImplementedError):
    """Raised when a primitive has no rule for the requested mode."""


class Primitive:
    """One operation: a name and a NumPy implementation `impl(*primals, **params)`.
    Its rules live in the tables below, registered right after the primitive."""

    __slots__ = ("name", "impl")

    def __init__(self, name: str, impl: Callable[..., Any]):
        self.name = name
        self.impl = impl

    def __call__(self, *args: Any, **params: Any) -> Any:
        trace = None  # the innermost trace among the arguments' (see innermost_trace)
        for a in args:
            if isinstance(a, Tracer) and (trace is None or a._trace.level > trace.level):
                trace = a._trace
        if trace is None:
            return self.impl(*args, **params)
        return trace.process(self, args, params)

    def __repr__(self) -> str:
        return f"Primitive({self.name})"


# ---------------------------------------------------------------------------
# The rule tables, one per transformation
#
# jvp_rules[prim](tangents, ans, primals, params) -> the tangent of ans, where
#     tangents[i] is None for an argument that carries no tangent;
# vjp_rules[prim](g, ans, primals, params, positions) -> the cotangents of the
#     arguments at `positions`, in that order, given the cotangent g of ans.
# Rules are written with primitives, so an outer trace differentiates them again.

jvp_rules: dict[Primitive, Callable[..., Any]] = {}
vjp_rules: dict[Primitive, Callable[..., list]] = {}


def _missing(mode: str, prim: Primitive, position: int | None = None) -> MissingRuleError:
    where = "" if position is None else f" with respect to argument {position}"
    return MissingRuleError(f"no {mode} rule for '{prim.name}'{where}")


def _per_argument(mode: str, prim: Primitive, rules: Sequence[Callable | None]) -> tuple:
    """The rules, with None replaced by one that raises a clear error when needed."""

    def missing(i: int) -> Callable:
        def rule(*_: Any, **__: Any) -> Any:
            raise _missing(mode, prim, i)
        return rule

    return tuple(missing(i) if rule is None else rule for i, rule in enumerate(rules))


def defjvp(prim: Primitive, *rules: Callable | None) -> None:
    """Register per-argument JVP rules `rule(t, ans, *primals, **params)`: the
    contributions of each argument's tangent t to the tangent of ans (summed)."""
    per_argument = _per_argument("JVP", prim, rules)

    def jvp(tangents, ans, primals, params):
        for i in range(len(per_argument), len(tangents)):
            if tangents[i] is not None:
                raise _missing("JVP", prim, i)
        out = None
        for rule, t in zip(per_argument, tangents, strict=False):
            if t is not None:
                contribution = rule(t, ans, *primals, **params)
                out = contribution if out is None else out + contribution
        return out

    jvp_rules[prim] = jvp


def defvjp(prim: Primitive, *rules: Callable | None) -> None:
    """Register per-argument VJP rules `rule(g, ans, *primals, **params)`: the
    cotangent of one argument given the cotangent g of ans."""
    per_argument = _per_argument("VJP", prim, rules)

    def vjp(g, ans, primals, params, positions):
        if positions[-1] >= len(per_argument):
            raise _missing("VJP", prim, positions[-1])
        cotangents = []
        for i in positions:
            cotangents.append(per_argument[i](g, ans, *primals, **params))
        return cotangents

    vjp_rules[prim] = vjp


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
    """A value being traced by one trace; `_primal` is the value underneath (itself
    a tracer when an outer trace sees it too). Arithmetic operators are installed by
    `operators.install_operators`; comparisons give plain boolean arrays, since they
    are not differentiable."""

    __slots__ = ("_trace", "_primal")
    __array_ufunc__ = None  # make `ndarray + tracer` defer to the reflected operators

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


def primal_value(x: Any) -> Any:
    """Strip every level of tracing: the plain NumPy value underneath."""
    while isinstance(x, Tracer):
        x = x._primal
    return x


def innermost_trace(args: Sequence) -> Any:
    """The trace of highest level among the arguments' tracers: it runs first, and
    hands the primal values (perhaps tracers of outer traces) to the next."""
    top = None
    for a in args:
        if isinstance(a, Tracer) and (top is None or a._trace.level > top.level):
            top = a._trace
    return top


# ---------------------------------------------------------------------------
# Reverse mode


class Box(Tracer):
    """A value on a reverse-mode tape, and the tape's record of how it was made (as
    in micrograd, a value is its own node): `prim` applied to `primals` and `params`
    gave it; `positions` are the argument positions traced on this tape and `parents`
    the boxes that were passed there (same order); `index` is its place on the tape.
    An input (leaf) has prim None."""

    __slots__ = ("prim", "primals", "params", "positions", "parents", "index", "tap")

    def __init__(self, primal, trace, prim, primals, params, positions, parents, index):
        self._primal = primal
        self._trace = trace
        self.prim = prim
        self.primals = primals
        self.params = params
        self.positions = positions
        self.parents = parents
        self.index = index
        self.tap = None  # a key under which backward passes report this box's cotangent

    @property
    def ans(self) -> Any:
        """The primal value this node computed (None once a single-use pass freed it)."""
        return self._primal

    def __repr__(self) -> str:
        return f"Box(level={self._trace.level}, {self._primal!r})"


_NO_PARAMS: dict = {}  # shared by inputs and unsaved boxes, never written to


class ReverseTrace:
    """A tape. With save=False it only evaluates (used for checkpointed segments)."""

    def __init__(self, save: bool = True):
        self.level = next(_levels)
        self.nodes: list[Box] = []
        self.save = save
        self.meter = meter()

    def new_input(self, value: Any) -> Box:
        # inputs belong to the caller: only values the tape produces count as saved
        box = Box(value, self, None, (), _NO_PARAMS, (), (), len(self.nodes))
        if self.save:
            self.nodes.append(box)
        return box

    def process(self, prim: Primitive, args: tuple, params: dict) -> Box:
        primals = list(args)
        positions, parents = [], []
        outer = False  # does an outer trace see some argument too?
        for i, a in enumerate(args):
            if isinstance(a, Tracer):
                if a._trace is self:
                    primals[i] = p = a._primal
                    positions.append(i)
                    parents.append(a)
                    outer = outer or isinstance(p, Tracer)
                else:
                    outer = True
        ans = prim(*primals, **params) if outer else prim.impl(*primals, **params)
        m = self.meter
        m.forward_ops += 1
        if not self.save:  # keeps nothing to go back through
            return Box(ans, self, prim, (), _NO_PARAMS, (), (), None)
        box = Box(ans, self, prim, primals, params, positions, parents, len(self.nodes))
        self.nodes.append(box)
        m.live_bytes += ans.nbytes if type(ans) is np.ndarray else nbytes_of(ans)
        if m.live_bytes > m.peak_bytes:
            m.peak_bytes = m.live_bytes
        return box

    def release(self) -> None:
        """Drop every saved value (after a single-use backward pass)."""
        m = self.meter
        for node in self.nodes:
            if node._primal is not None and node.prim is not None:
                m.free(nbytes_of(node._primal))
                node._primal = None
                node.primals = ()
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
    seeds: list[tuple[Box, Any]],
    consume: bool = False,
    inspect: bool = False,
) -> Iterator[BackwardStep | list]:
    """Pull cotangents back through the tape, node by node in reverse order.

    Yields a `BackwardStep` for each node visited when `inspect` is set; the
    last item yielded is the list of cotangents indexed by node index (inputs
    keep theirs). `consume` frees each node's saved values once it is done, and
    empties the tape: a single-use pass.
    """
    nodes = trace.nodes
    cts: list = [None] * len(nodes)
    for node, ct in seeds:
        i = node.index
        cts[i] = ct if cts[i] is None else cts[i] + ct
    m = trace.meter
    start = max(node.index for node, _ in seeds)
    for i in range(start, -1, -1):
        node = nodes[i]
        prim = node.prim
        if prim is None:  # an input: its cotangent is a result
            continue
        g = cts[i]
        if g is not None:
            cts[i] = None
            vjp = vjp_rules.get(prim)
            if vjp is None:
                raise _missing("VJP", prim)
            outs = vjp(g, node._primal, node.primals, node.params, node.positions)
            for parent, ct in zip(node.parents, outs, strict=True):
                j = parent.index
                cts[j] = ct if cts[j] is None else cts[j] + ct
            if node.tap is not None:
                _report_tap(node, g, outs)
            if inspect:
                yield BackwardStep(
                    index=i,
                    op=prim.name,
                    input_shapes=[tuple(np.shape(primal_value(a))) for a in node.primals],
                    output_shape=tuple(np.shape(primal_value(node._primal))),
                    cotangent_in=g,
                    cotangents_out=[(parent.index, ct)
                                    for parent, ct in zip(node.parents, outs, strict=True)],
                    params=node.params,
                )
        ans = node._primal
        if consume and ans is not None:
            m.live_bytes -= ans.nbytes if type(ans) is np.ndarray else nbytes_of(ans)
            node._primal = None
            node.primals = ()
    if consume:  # the tape is used up: free what follows the seeds as well
        trace.nodes = nodes[start + 1:]
        trace.release()
    yield cts


def run_backward(trace, seeds, consume=False) -> list:
    """Drive `backward_pass` to the end and return the cotangents."""
    *_, cotangents = backward_pass(trace, seeds, consume=consume)
    return cotangents


# ---------------------------------------------------------------------------
# Taps: values and cotangents of marked intermediates


def tap(x: Any, key: Any, cotangent: bool = True, value: bool = True) -> Any:
    """Mark an intermediate value: `value_and_grad_with_taps` reports its value
    (unless value=False) and its cotangent (unless cotangent=False) under `key`.
    Outside that transformation it does nothing."""
    sink = getattr(_local, "sink", None)
    if sink is None:
        return x
    see_value, _ = sink
    if value:
        if callable(see_value):
            see_value(key, primal_value(x))
        else:
            see_value[key] = primal_value(x)
    if cotangent and isinstance(x, Box):
        x.tap = key
    return x


def _report_tap(node: Box, g: Any, outs: list) -> None:
    report = _local.sink[1]
    if callable(report):  # told at once, while g is still in cache, with what this
        # node passed back to each of its inputs (by argument position)
        report(node.tap, g, dict(zip(node.positions, outs, strict=True)))
    else:
        report[node.tap] = g


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
    """A primal value with its tangent pushed along with it."""

    __slots__ = ("_tangent",)

    def __init__(self, primal, tangent, trace):
        self._primal = primal
        self._tangent = tangent
        self._trace = trace

    def __repr__(self) -> str:
        return f"JVPTracer(level={self._trace.level}, {self._primal!r})"


class JVPTrace:
    def __init__(self):
        self.level = next(_levels)

    def process(self, prim: Primitive, args: tuple, params: dict) -> JVPTracer:
        primals = list(args)
        tangents = [None] * len(args)
        for i, a in enumerate(args):
            if isinstance(a, JVPTracer) and a._trace is self:
                primals[i] = a._primal
                tangents[i] = a._tangent
        ans = prim(*primals, **params)
        jvp = jvp_rules.get(prim)
        if jvp is None:
            raise _missing("JVP", prim)
        return JVPTracer(ans, jvp(tangents, ans, primals, params), self)
