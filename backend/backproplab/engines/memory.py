"""What the backward pass keeps alive, measured, not computed from a formula.

For the current network at several depths and per checkpointing strategy (none,
√L segments, a segment every k layers): the peak bytes of activations saved for the
backward pass, the forward operations evaluated (recomputation included) and the
time of one forward and backward pass. Two meters:
- the tape's: every value saved on a tape counted while it lives (`tape.metering`);
- torch autograd's: on the CPU each tensor autograd saves, through
  `torch.autograd.graph.saved_tensors_hooks`, counted once per storage while some
  graph node holds it (parameters excluded); on CUDA the allocator's peak above
  what was allocated before the pass. Segments are `torch.utils.checkpoint`ed;
- JAX's, where jax is installed: the residuals `jax.vjp` keeps for the backward
  pass, segments `jax.checkpoint`ed (jax_memory).

Microbatching: k parts give the full-batch gradient (the largest relative
difference is measured) with one part's activations alive at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import tape
from ..model import init_params, network
from ..model.spec import RunSpec
from ..tape.optim import split_batch
from .base import Cancelled
from .jax_engine import jax_available
from .tape_engine import TapeEngine
from .torch_engine import torch_available

STRATEGIES = ("none", "sqrt", "every")
JAX_METER = "residuals of jax.vjp; forward work in arithmetic operations"
DEFAULT_EVERY = 4  # layers per segment for the 'every' curve when the config sets none


@dataclass(frozen=True)
class Pass:
    """One forward and backward pass, metered."""

    peak_bytes: int
    forward_ops: int
    time_s: float


@dataclass
class Curve:
    """One strategy over the depths, on one meter; slope of log peak over log depth."""

    peak_bytes: list[int] = field(default_factory=list)
    forward_ops: list[int] = field(default_factory=list)
    time_s: list[float] = field(default_factory=list)

    def add(self, p: Pass) -> None:
        self.peak_bytes.append(p.peak_bytes)
        self.forward_ops.append(p.forward_ops)
        self.time_s.append(p.time_s)


def depth_grid(lo: int = 8, hi: int = 1000, points: int = 10) -> list[int]:
    """Log-spaced depths from lo to hi, rounded, distinct."""
    return sorted({int(round(d)) for d in np.geomspace(lo, hi, points)})


def log_log_slope(depths: Sequence[int], values: Sequence[float]) -> float:
    """The least-squares slope of log(value) over log(depth): 1 for O(L), ½ for O(√L)."""
    if len(depths) < 2:
        return float("nan")
    return float(np.polyfit(np.log(depths), np.log(np.asarray(values, float)), 1)[0])


def measured_dtype(spec: RunSpec) -> str:
    """Both meters run float64 or float32 (bfloat16 and TF32 runs: measured in float32)."""
    return "float64" if spec.dtype == "float64" else "float32"


def strategy_spec(spec: RunSpec, strategy: str, depth: int, every: int) -> RunSpec:
    return spec.replace(engine="numpy", device="cpu", dtype=measured_dtype(spec), depth=depth,
                        checkpoint=strategy, checkpoint_every=every, microbatches=1,
                        delta_clip=None)


# --- the tape's meter -----------------------------------------------------------------
def tape_pass(spec: RunSpec, microbatches: int = 1) -> tuple[Pass, list[np.ndarray]]:
    """The tape engine's forward and backward of step 0's batch (in `microbatches`
    parts, accumulated) under the tape's meter; and the mean-loss gradient."""
    engine = TapeEngine(spec)
    x, labels, targets = engine.make_batch(0)
    grads = None
    with np.errstate(all="ignore"), tape.metering() as meter:
        start = time.perf_counter()
        for xb, lb, tb in split_batch((x, labels, targets), microbatches):
            part = engine.forward_backward(engine.to_device(xb), lb, engine.to_device(tb), None)
            share = len(xb) / len(x)  # the mean gradient: parts weighted by their share
            scaled = [share * g for g in part.grads]
            grads = scaled if grads is None else [a + b for a, b in zip(grads, scaled,
                                                                         strict=True)]
        elapsed = time.perf_counter() - start
    return Pass(meter.peak_bytes, meter.forward_ops, elapsed), grads


# --- torch autograd's meter -------------------------------------------------------------
class _SavedBytes:
    """Bytes of the tensors autograd holds for backward, once per storage."""

    def __init__(self, skip: set[int]):
        self.skip, self.refs = skip, {}
        self.live = self.peak = 0


class _Saved:
    """What autograd keeps instead of a tensor: the tensor and its share of the count;
    dropped (and uncounted) when the graph node that saved it is freed."""

    __slots__ = ("key", "meter", "nbytes", "tensor")

    def __init__(self, tensor: Any, meter: _SavedBytes):
        storage = tensor.untyped_storage()
        self.tensor, self.meter = tensor, meter
        self.key, self.nbytes = storage.data_ptr(), storage.nbytes()
        count = meter.refs.get(self.key, 0)
        if count == 0:
            meter.live += self.nbytes
            meter.peak = max(meter.peak, meter.live)
        meter.refs[self.key] = count + 1

    def __del__(self) -> None:
        meter = self.meter
        count = meter.refs.pop(self.key) - 1
        if count:
            meter.refs[self.key] = count
        else:
            meter.live -= self.nbytes


def _torch_loss(torch: Any, spec: RunSpec, out: Any, labels: Any, targets: Any) -> Any:
    if spec.loss == "mse":
        return ((out - targets) ** 2).mean()
    return torch.nn.functional.cross_entropy(out, labels)


def torch_pass(spec: RunSpec, microbatches: int = 1,
               device: str = "cpu") -> tuple[Pass, list[np.ndarray]]:
    """The same pass on torch autograd, segments by `torch.utils.checkpoint`; the peak
    from saved-tensor hooks (CPU) or the CUDA allocator's peak."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils.checkpoint import checkpoint

    from ..model import batch
    from ..xp import TorchXP
    from .torch_engine import torch_kernels

    dtype = {"float32": torch.float32, "float64": torch.float64}[measured_dtype(spec)]
    dev = torch.device(device)
    net = network.layers(spec)
    kernels = torch_kernels(torch, TorchXP(torch), net)
    params = [torch.as_tensor(p, dtype=dtype, device=dev).requires_grad_()
              for pair in init_params(spec) for p in pair]
    x, labels, targets = batch(spec, 0)
    ops = [0]

    class Count(TorchFunctionMode):  # the torch calls a layer's forward makes
        def __torch_function__(self, func, types, args=(), kwargs=None):
            ops[0] += 1
            return func(*args, **(kwargs or {}))

    def segment(lo: int, hi: int):
        def run(a, *chunk):
            with Count():
                for j, index in enumerate(range(lo, hi)):
                    a = network.layer_forward(net[index], kernels, a, chunk[2 * j],
                                              chunk[2 * j + 1]).a_out
            return a
        return run

    bounds = spec.segment_bounds
    checkpointing = len(bounds) > 1
    meter = _SavedBytes({p.untyped_storage().data_ptr() for p in params})

    def pack(t):
        return t if t.untyped_storage().data_ptr() in meter.skip else _Saved(t, meter)

    def unpack(saved):
        return saved.tensor if isinstance(saved, _Saved) else saved

    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        for xb, lb, tb in split_batch((x, labels, targets), microbatches):
            a = torch.as_tensor(xb, dtype=dtype, device=dev)
            for lo, hi in bounds:
                chunk = params[2 * lo:2 * hi]
                run = segment(lo, hi)
                a = checkpoint(run, a, *chunk, use_reentrant=True) if checkpointing \
                    else run(a, *chunk)
            with Count():
                out = kernels.dense(a, params[-2], params[-1], net[-1])
            loss = _torch_loss(torch, spec, out, torch.as_tensor(lb, device=dev),
                               torch.as_tensor(tb, dtype=dtype, device=dev))
            # .grad sums the parts' shares: the mean gradient (reentrant checkpoints
            # need backward(), not autograd.grad)
            (loss * (len(xb) / len(x))).backward()
            del loss, out, a
    if cuda:
        torch.cuda.synchronize(dev)
        peak = torch.cuda.max_memory_allocated(dev) - base
    else:
        peak = meter.peak
    elapsed = time.perf_counter() - start
    return Pass(int(peak), ops[0], elapsed), [p.grad.detach().cpu().numpy() for p in params]


# --- the report --------------------------------------------------------------------------
def max_relative_difference(grads: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """max over parameters of max|g − ref| / max|ref|."""
    worst = 0.0
    for g, r in zip(grads, reference, strict=True):
        scale = float(np.max(np.abs(r))) if r.size else 0.0
        diff = float(np.max(np.abs(g - r))) if r.size else 0.0
        worst = max(worst, diff / scale if scale > 0 else diff)
    return worst


def microbatch_counts(batch_size: int, current: int) -> list[int]:
    return sorted({k for k in (1, 2, 4, 8, 16) if k <= batch_size} | {current})


def _curves(spec: RunSpec, depths: Sequence[int], every: int, measure) -> dict[str, dict]:
    """strategy -> {peak_bytes, forward_ops, time_s, slope, extra_forward} on one meter;
    extra_forward: the forward work recomputed, as a fraction of one forward pass."""
    curves = {}
    for strategy in STRATEGIES:
        curve = Curve()
        for depth in depths:
            curve.add(measure(strategy_spec(spec, strategy, depth, every))[0])
        curves[strategy] = {"peak_bytes": curve.peak_bytes, "forward_ops": curve.forward_ops,
                            "time_s": curve.time_s,
                            "slope": log_log_slope(depths, curve.peak_bytes)}
    plain = curves["none"]["forward_ops"]
    for row in curves.values():
        row["extra_forward"] = [ops / base - 1.0 for ops, base in
                                zip(row["forward_ops"], plain, strict=True)]
    return curves


def available_meters() -> list[str]:
    """The meters this Python has: the tape's always, torch's and JAX's if installed."""
    return ["numpy"] + (["torch"] if torch_available() else []) + \
        (["jax"] if jax_available() else [])


def jax_pass(spec: RunSpec, microbatches: int = 1) -> tuple[Pass, list[np.ndarray]]:
    from .jax_memory import jax_pass as measure

    return measure(spec, microbatches)


def memory_report(spec: RunSpec, depths: Sequence[int],
                  engines: Sequence[str] = ("numpy", "torch", "jax"),
                  device: str = "cpu", cancel: Any = None,
                  check: Callable[[], None] | None = None) -> dict[str, Any]:
    """Peak saved bytes, forward ops and time per strategy and depth on each meter
    (the tape's at the top level of each strategy, torch's and JAX's under their
    names), the fitted slopes, the current network's point, and the microbatch table.
    `cancel`: a threading.Event checked before each pass (Cancelled once it is set);
    `check`: called before each pass too (it raises to stop the report)."""
    engines = [e for e in engines if e in available_meters()]
    every = spec.checkpoint_every if spec.checkpoint == "every" else DEFAULT_EVERY
    passes = {"numpy": lambda s, k=1: tape_pass(s, k),
              "torch": lambda s, k=1: torch_pass(s, k, device),
              "jax": lambda s, k=1: jax_pass(s, k)}

    def checked(measure):
        def run(*args):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if check is not None:
                check()
            return measure(*args)
        return run

    meters = {name: checked(measure) for name, measure in passes.items()}
    per_engine = {e: _curves(spec, depths, every, meters[e]) for e in engines}
    strategies = {}
    for strategy in STRATEGIES:
        strategies[strategy] = dict(per_engine["numpy"][strategy])
        for e in engines[1:]:
            strategies[strategy][e] = per_engine[e][strategy]
    here = strategy_spec(spec, spec.checkpoint, spec.depth, every)
    current: dict[str, Any] = {"depth": spec.depth, "strategy": spec.checkpoint}
    micro = [{"k": k} for k in microbatch_counts(spec.batch_size, spec.microbatches)]
    for e in engines:
        prefix = "" if e == "numpy" else f"{e}_"
        full, reference = meters[e](here, 1)
        current[f"{prefix}peak_bytes"] = full.peak_bytes
        for row in micro:
            p, grads = (full, reference) if row["k"] == 1 else meters[e](here, row["k"])
            row[f"{prefix}peak_bytes"] = p.peak_bytes
            row[f"{prefix}max_rel_diff"] = max_relative_difference(grads, reference)
    return {"depths": list(depths), "width": spec.width, "batch_size": spec.batch_size,
            "dtype": measured_dtype(spec), "every": every, "engines": engines,
            "torch_meter": "CUDA allocator peak" if device == "cuda" else
            "saved-tensor hooks", "jax_meter": JAX_METER if "jax" in engines
            else None, "strategies": strategies, "current": current,
            "microbatches": micro}


def pass_work(spec: RunSpec, depth: int) -> float:
    """Multiply-adds of one metered pass: forward, backward (twice the forward) and at
    most one forward recomputed: 4·depth·width²·batch."""
    return 4.0 * depth * spec.width ** 2 * spec.batch_size + 1.0


def affordable_depths(spec: RunSpec, depths: Sequence[int], max_work: float,
                      max_bytes: float, engines: int = 3) -> list[int]:
    """The depths, shallowest first, whose passes (3 strategies on each meter) fit the
    work budget in total, and whose un-checkpointed activations fit max_bytes."""
    itemsize = 8 if measured_dtype(spec) == "float64" else 4
    kept, total = [], 0.0
    for depth in sorted(depths):
        total += 3 * engines * pass_work(spec, depth)
        saved = 3.0 * depth * spec.batch_size * max(spec.width, spec.out_features) * itemsize
        if total > max_work or saved > max_bytes:
            break
        kept.append(depth)
    return kept


__all__ = ["STRATEGIES", "Curve", "Pass", "affordable_depths", "depth_grid", "log_log_slope",
           "available_meters", "jax_pass", "max_relative_difference", "memory_report",
           "microbatch_counts", "tape_pass", "torch_pass"]
