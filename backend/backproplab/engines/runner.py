"""Run a spec on an engine and produce step records (plain dicts; NaN and ±Inf
kept as floats — encoding them for JSON is the run layer's job)."""

from __future__ import annotations

import copy
import functools
import math
import platform
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .. import __version__
from ..model import batch
from ..model.data import REAL
from ..model.spec import RecordSpec, RunSpec
from ..theory import predict
from . import probes
from .base import Cancelled, Engine, StepResult
from .evaluate import held_out_accuracy
from .jacobian import singular_values
from .tape_engine import TapeEngine
from .torch_engine import TorchEngine, torch_available

SCHEMA = "backproplab.run/1"


def make_engine(spec: RunSpec, threads: int | None = None) -> Engine:
    if spec.engine == "numpy":
        if spec.device == "cuda":
            raise ValueError("device 'cuda' needs engine 'torch' or 'jax'")
        return TapeEngine(spec)
    if spec.engine == "torch":
        if not torch_available():
            raise ValueError("engine 'torch' needs PyTorch, which is not installed here")
        return TorchEngine(spec, threads=threads)
    if spec.engine == "jax":
        from .jax_engine import JaxEngine, jax_available

        if not jax_available():
            raise ValueError("engine 'jax' needs JAX (pip install jax), which is not "
                             "installed here")
        return JaxEngine(spec, threads=threads)
    raise ValueError(f"unknown engine {spec.engine!r}")


def environment(engine: Engine) -> dict[str, Any]:
    env = {"python": platform.python_version(), "numpy": np.__version__,
           "platform": platform.platform(), "engine": engine.spec.engine,
           "device": engine.device_name, "dtype": engine.spec.dtype}
    try:  # the installed version, without importing torch (seconds) for a NumPy run
        from importlib.metadata import version

        env["torch"] = version("torch")
    except ImportError:
        env["torch"] = None
    if engine.spec.engine == "jax":
        import jax

        env["jax"] = jax.__version__
    env["backproplab"] = __version__
    return env


def recorded_steps(spec: RunSpec) -> list[int]:
    last = max(spec.steps - 1, 0)
    every = max(spec.record.every, 1)
    return sorted({s for s in range(0, last + 1, every)} | {last})


def step_record(engine: Engine, step: int, result: StepResult, elapsed: float,
                jacobian: bool) -> dict[str, Any]:
    """The record of one step: {step, loss, accuracy, time_s, layers[, jacobian_sv]}."""
    spec, xp = engine.spec, engine.xp
    summary = result.summary if result.summary is not None else probes.summarize(
        xp, result.probe, result.norms, spec.activation, spec.norm, spec.record.hist_bins,
        spec.record.delta_samples, spec.seed)
    accuracy = None
    if spec.dataset != "gaussian" or spec.loss == "cross_entropy":
        predicted = np.argmax(xp.host(result.output), axis=1)
        accuracy = float(np.mean(predicted == result.labels))
    layers = [{"index": i, "kind": "hidden" if i < spec.depth else "output", **stats}
              for i, stats in enumerate(summary.layers())]
    if result.per_example is not None:
        for layer, per_example in zip(layers, result.per_example, strict=True):
            layer["per_example"] = per_example
    record = {"step": step, "loss": float(xp.host(result.loss)), "accuracy": accuracy,
              "time_s": elapsed, "layers": layers}
    if result.grad_norm is not None:  # ‖g‖ before clipping; the factor g was scaled by
        record["grad_norm"] = float(xp.host(result.grad_norm))
        record["clip_factor"] = 1.0 if result.clip_factor is None else \
            float(xp.host(result.clip_factor))
    if spec.dataset in REAL:  # after this step's update, on the held-out part
        record["test_accuracy"] = held_out_accuracy(spec, engine.params_host())
    if jacobian and result.spectrum is not None:
        record["jacobian_sv"] = [float(v) for v in result.spectrum]
    elif jacobian:
        with engine.full_precision():
            sv = singular_values(xp, spec, engine.weights, result.zs, spec.record.jacobian_topk,
                                 check=engine.check_cancel)
        record["jacobian_sv"] = [float(v) for v in sv]
    return record


def iter_steps(spec: RunSpec, cancel: threading.Event | None = None,
               engine: Engine | None = None,
               before_step: Callable[[int], bool] | None = None,
               every_step: bool = False) -> Iterator[dict[str, Any] | None]:
    """Train and yield the record of every recorded step. Checks `cancel` between
    steps and layers; `before_step(step)` may block (pause) and returns True to
    record that step whatever `record.every` says (single-stepping). `every_step`:
    also yield None after a step that is not recorded (a scheduler's turn ends)."""
    engine = engine or make_engine(spec)
    engine.cancel = cancel
    wanted = set(recorded_steps(spec))
    start = time.perf_counter()
    total = max(spec.steps, 1)
    jac_every = spec.record.jacobian_every
    for step in range(total):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        forced = before_step(step) if before_step is not None else False
        probe = forced or step in wanted
        jacobian = probe and jac_every > 0 and step % jac_every == 0
        # overflow to ±Inf/NaN is what this app shows, not a warning to print
        with np.errstate(all="ignore"):
            result = engine.train_step(step, probe=probe, update=spec.steps > 0,
                                       spectrum=jacobian)
            if probe:
                record = step_record(engine, step, result, time.perf_counter() - start,
                                     jacobian)
        if probe:
            yield record
        elif every_step:
            yield None


def first_nonfinite(record: dict[str, Any]) -> int | None:
    """Index of the first layer whose δ or gradient norm is NaN or ±Inf, if any, in the
    order the backward pass computes them (from the output): where the overflow
    started, every layer nearer the input inheriting it."""
    for layer in reversed(record["layers"]):
        if any(not math.isfinite(layer[k]) for k in ("delta_norm", "grad_w_norm")):
            return layer["index"]
    return None


def theory_for(spec: RunSpec) -> dict[str, Any]:
    """The mean-field prediction for this run, from the length of its actual input.

    q_in is estimated from one batch (its sampling error is a few percent), so it is
    kept to 3 significant digits; predictions are cached on what they depend on,
    which makes a slider drag that only moves the seed or the learning rate free."""
    q_in = float(f"{float(np.mean(np.square(batch(spec, 0)[0]))):.3g}")
    relevant = spec.replace(seed=0, lr=0.0, engine="numpy", device="cpu", dtype="float64",
                            microbatches=1, clip=None, delta_clip=None, checkpoint="none",
                            checkpoint_every=4, record=RecordSpec(),
                            batch_size=1, steps=min(spec.steps, 1))
    return copy.deepcopy(_cached_predict(relevant, q_in))


@functools.lru_cache(maxsize=512)
def _cached_predict(spec: RunSpec, q_in: float) -> dict[str, Any]:
    return predict(spec, q_in)


def run(spec: RunSpec, on_step: Callable[[dict], None] | None = None,
        cancel: threading.Event | None = None) -> dict[str, Any]:
    """A whole run record {schema, config, environment, theory, steps}."""
    engine = make_engine(spec)
    theory = theory_for(spec)
    steps = []
    for record in iter_steps(spec, cancel, engine):
        steps.append(record)
        if on_step is not None:
            on_step(record)
    return {"schema": SCHEMA, "config": spec.to_dict(), "environment": environment(engine),
            "theory": theory, "steps": steps}
