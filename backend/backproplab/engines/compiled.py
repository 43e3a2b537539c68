"""What XLA does to the training step, measured in this process.

For a spec, the JAX engine's plain step (forward, backward, update) and its
forward pass alone are traced and compiled; for each: equations in the jaxpr
(counted into nested jaxprs: scan bodies, checkpointed segments, custom rules),
HLO instructions before XLA's optimization and after it (those that run as
their own operation, outside fused computations), the number of fusions, and
the bytes accessed as XLA's cost model counts them before and after. Then the
compile time, the step's time jitted and op by op (`jax.disable_jit()`: every
primitive dispatched on its own, as eager frameworks run), and PyTorch's eager
step on the same network for reference.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..model.spec import RunSpec

INSTRUCTION = re.compile(r"\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*)$")
COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s*(?:\(.*\))?.*\{\s*$")
CALLS = re.compile(r"calls=%?([\w.\-]+)")


def count_equations(jaxpr: Any, executed: bool = False) -> int:
    """Equations of a jaxpr and of every jaxpr nested in its equations' parameters;
    executed: a scan's body counted once per iteration (what runs op by op)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        times = eqn.params.get("length", 1) if executed and eqn.primitive.name == "scan" else 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns"):
                    total += times * count_equations(inner, executed)
    return total


def _opcode(rest: str) -> str:
    """The opcode of an HLO instruction from the text after `name = `: the shape
    (a tuple in parentheses, or one token), then `opcode(`."""
    if rest.startswith("("):
        depth = 0
        for i, ch in enumerate(rest):
            depth += (ch == "(") - (ch == ")")
            if depth == 0:
                rest = rest[i + 1:]
                break
    else:
        rest = rest.split(" ", 1)[1] if " " in rest else ""
    return rest.strip().split("(", 1)[0]


def hlo_counts(text: str) -> dict[str, int]:
    """instructions: all of them; executed: those outside fused computations (each
    an operation of its own); fusions: the fusion instructions among those."""
    computations: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if current is None:
            match = COMPUTATION.match(line)
            if match and "=" not in line.split("{", 1)[0].split("(", 1)[0]:
                current = match.group(1)
                computations[current] = []
            continue
        if line.strip() == "}":
            current = None
            continue
        match = INSTRUCTION.match(line)
        if match:
            computations[current].append(line)
    fused = {name for lines in computations.values() for line in lines
             if _opcode(INSTRUCTION.match(line).group(1)) == "fusion"
             for name in CALLS.findall(line)}
    executed = [line for name, lines in computations.items() if name not in fused
                for line in lines]
    return {"instructions": sum(len(v) for v in computations.values()),
            "executed": len(executed),
            "fusions": sum(_opcode(INSTRUCTION.match(line).group(1)) == "fusion"
                           for line in executed)}


def _bytes(cost: Any) -> float:
    if isinstance(cost, (list, tuple)):  # older jax: one dict per device
        cost = cost[0] if cost else {}
    return float((cost or {}).get("bytes accessed", float("nan")))


def program_stats(fn: Callable, args: tuple) -> dict[str, Any]:
    """jaxpr, HLO and cost-model figures of fn(*args), and its compile time."""
    import jax

    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    start = time.perf_counter()
    lowered = jax.jit(fn).lower(*args)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start
    before = hlo_counts(lowered.as_text(dialect="hlo"))
    after = hlo_counts(compiled.as_text())
    return {"jaxpr_equations": count_equations(jaxpr),
            "equations_executed": count_equations(jaxpr, executed=True),
            "hlo_before": before["instructions"],
            "hlo_after": after["executed"], "fusions": after["fusions"],
            "bytes_before": _bytes(lowered.cost_analysis()),
            "bytes_after": _bytes(compiled.cost_analysis()),
            "compile_s": compile_s, "compiled": compiled}


def _median_ms(fn: Callable[[], Any], budget_s: float, most: int = 50,
               check: Callable[[], None] = lambda: None) -> float:
    """Median ms of fn() over as many calls as fit in budget_s (at least 1, at most
    `most`), after one warm-up call; `check()` before each call may raise to stop."""
    check()
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < most and (not times or spent < budget_s):
        check()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return float(np.median(times)) * 1e3


def torch_step_ms(spec: RunSpec, budget_s: float = 0.5, threads: int = 1,
                  check: Callable[[], None] = lambda: None) -> float | None:
    """PyTorch's eager step (torch engine, no probes) on this network, if torch is here,
    with the threads a run gets by default (Settings.torch_threads)."""
    from .torch_engine import torch_available

    if not torch_available():
        return None
    from .torch_engine import TorchEngine

    engine = TorchEngine(spec.replace(engine="torch", device="cpu"), threads=threads)
    return _median_ms(lambda: engine.train_step(0, probe=False), budget_s, check=check)


# op by op (jax.disable_jit), JAX compiles each primitive application it has not seen,
# and the scanned hidden layers' slices count apart: 463 compilations, ~25 s, at depth
# 100; minutes and gigabytes at 1000. Deeper networks are not timed op by op.
OP_BY_OP_MAX_DEPTH = 64


def analyze(spec: RunSpec, budget_s: float = 0.5, op_by_op: bool = True,
            check: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """The figures above for the spec's network (see the module docstring). `check()`
    runs between compilations and timed calls; it may raise to stop the analysis."""
    import jax

    from .jax_engine import JaxEngine
    from .jax_step import make_loss, make_step

    spec = spec.replace(engine="jax", device="cpu")
    engine = JaxEngine(spec)
    step = make_step(spec, probe=False, with_spectrum=False, update=True)
    loss = make_loss(spec, keep=None)
    with engine.scope():
        args = engine.inputs(0, update=True)[0]
        x, labels, targets = args[:3]
        state = engine.state

        def forward(params, x, labels, targets):
            return loss(params, None, x, labels, targets)[0]

        check()
        fwd = program_stats(forward, (state["params"], x, labels, targets))
        check()
        full = program_stats(step, (state, *args))
        compiled = full.pop("compiled")
        fwd.pop("compiled")
        jit_ms = _median_ms(lambda: jax.block_until_ready(compiled(state, *args)), budget_s,
                            check=check)
        eager_ms = None
        if op_by_op and spec.depth <= OP_BY_OP_MAX_DEPTH:
            def eager():
                with jax.disable_jit():
                    return jax.block_until_ready(step(state, *args))
            eager_ms = _median_ms(eager, budget_s, most=5, check=check)
    torch_ms = torch_step_ms(spec, budget_s, check=check)
    report = {"forward": fwd, "step": full, "compile_s": full["compile_s"],
              "jit_ms": jit_ms, "op_by_op_ms": eager_ms, "torch_ms": torch_ms,
              "jax": jax.__version__, "device": engine.device.platform, "dtype": spec.dtype,
              "depth": spec.depth}
    report["summary"] = summary(report)
    return report


def summary(report: dict[str, Any]) -> str:
    """One sentence on what fusion did to the backward pass."""
    fwd, step = report["forward"], report["step"]
    backward = step["jaxpr_equations"] - fwd["jaxpr_equations"]
    executed = step["equations_executed"] - fwd["equations_executed"]
    text = (f"The backward pass and update add {backward} jaxpr equations to the forward "
            f"pass's {fwd['jaxpr_equations']} ({executed} operations when run op by op); "
            f"XLA compiles the whole step from "
            f"{step['hlo_before']} HLO instructions into {step['hlo_after']} operations, "
            f"{step['fusions']} of them fusions, and its cost model's memory traffic goes "
            f"from {step['bytes_before'] / 1e6:.3g} MB to {step['bytes_after'] / 1e6:.3g} MB")
    if report.get("op_by_op_ms") is None and report.get("depth", 0) > OP_BY_OP_MAX_DEPTH:
        text += (f"; op by op it is not timed beyond {OP_BY_OP_MAX_DEPTH} layers (JAX would "
                 "compile each layer's operations apart: minutes at this depth)")
    if report.get("op_by_op_ms"):
        speedup = report["op_by_op_ms"] / report["jit_ms"]
        digits = 0 if speedup >= 10 else 1
        text += (f": one step takes {report['jit_ms']:.3g} ms jitted against "
                 f"{report['op_by_op_ms']:.3g} ms op by op ({speedup:.{digits}f}× faster)")
    return text + "."
