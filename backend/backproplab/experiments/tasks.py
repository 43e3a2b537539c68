"""The task kinds an experiment is made of. Each is a pure function of its
parameters (a run config and a seed inside it): the same task gives the same
numbers in this process, in a pool worker or on a Ray node. Results are plain
JSON-able dicts (NaN and ±Inf stay floats; the codec encodes them)."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from ..engines import Cancelled, iter_steps, make_engine
from ..engines.jacobian import singular_values
from ..engines.runner import step_record, theory_for
from ..model.activations import ACTIVATIONS
from ..model.spec import RunSpec
from ..xp import NUMPY


def train(config: dict, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Train; per recorded step the loss, train-batch and test accuracy; at step 0
    (initialization) the per-layer ‖δ(l)‖ and ‖∇W(l)‖."""
    spec = RunSpec.from_dict(config)
    steps, losses, accuracy, test_accuracy, first = [], [], [], [], None
    for record in iter_steps(spec, cancel):
        if first is None:
            first = record
        steps.append(record["step"])
        losses.append(record["loss"])
        accuracy.append(record["accuracy"])
        test_accuracy.append(record.get("test_accuracy"))
    layers = first["layers"][:-1]  # hidden layers
    return {"steps": steps, "loss": losses, "accuracy": accuracy,
            "test_accuracy": test_accuracy,
            "delta_norm_init": [layer["delta_norm"] for layer in layers],
            "grad_w_norm_init": [layer["grad_w_norm"] for layer in layers]}


def layers_at_init(config: dict, examples: int = 8,
                   cancel: threading.Event | None = None) -> dict[str, Any]:
    """At initialization: per-layer activation and log|δ| histograms, and the mean
    singular value of each layer Jacobian ∂a(l+1)/∂a(l) = diag φ'(z(l+1)) W(l+1)
    (Glorot & Bengio's J_i), averaged over `examples` inputs."""
    spec = RunSpec.from_dict(config)
    engine = make_engine(spec)
    with np.errstate(all="ignore"):
        result = engine.train_step(0, probe=True, update=False)
        record = step_record(engine, 0, result, 0.0, jacobian=False)
    xp = engine.xp
    weights = [np.asarray(xp.host(w), dtype=np.float64) for w in engine.weights]
    zs = [np.asarray(xp.host(z), dtype=np.float64) for z in result.zs]
    mean_sv = []
    for index in range(spec.depth - 1):  # hidden layer index → index + 1
        W = weights[index + 1]
        values = []
        for e in range(min(examples, zs[index + 1].shape[0])):
            d = ACTIVATIONS[spec.activation].dphi(zs[index + 1][e], NUMPY)
            values.append(float(np.mean(np.linalg.svd(d[:, None] * W, compute_uv=False))))
        mean_sv.append(float(np.mean(values)))
    hidden = record["layers"][:spec.depth]
    return {"a_hist": [layer["a_hist"] for layer in hidden],
            "delta_log_hist": [layer["delta_log_hist"] for layer in hidden],
            "a_std": [layer["a_std"] for layer in hidden],
            "delta_norm": [layer["delta_norm"] for layer in hidden],
            "jacobian_mean_sv": mean_sv}


def spectrum(config: dict, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Singular values of the hidden stack's input-output Jacobian ∂a(L)/∂a(1) at
    initialization (the engines' measurement), and the mean-field moments of λ = σ²."""
    spec = RunSpec.from_dict(config)
    engine = make_engine(spec)
    with np.errstate(all="ignore"):
        result = engine.train_step(0, probe=True, update=False)
        with engine.full_precision():
            sv = singular_values(engine.xp, spec, engine.weights, result.zs,
                                 spec.record.jacobian_topk)
    theory = theory_for(spec)
    return {"sv": [float(v) for v in sv], "theory_jacobian": theory["jacobian"],
            "q_star": theory["q_star"], "chi1": theory["chi1"]}


def memory(config: dict, cancel: threading.Event | None = None) -> dict[str, Any]:
    """Peak bytes the tape holds for values saved for the backward pass during one
    training step, and the number of forward primitive applications (the tape's meter)."""
    from .. import tape

    spec = RunSpec.from_dict(config)
    if spec.engine != "numpy":
        raise ValueError("the memory meter measures the NumPy tape: engine must be 'numpy'")
    engine = make_engine(spec)
    with tape.metering() as meter:
        engine.train_step(0, probe=False)
    layer_bytes = spec.batch_size * spec.width * np.dtype(spec.dtype).itemsize
    return {"peak_bytes": int(meter.peak_bytes), "forward_ops": int(meter.forward_ops),
            "layer_bytes": int(layer_bytes), "segments": spec.segments}


KINDS = {"train": train, "layers_at_init": layers_at_init, "spectrum": spectrum,
         "memory": memory}


def run_task(task: dict[str, Any], cancel: threading.Event | None = None) -> dict[str, Any]:
    """Execute one task with one BLAS thread (so every backend computes the same bits:
    a pool or a Ray node runs one task per core)."""
    function = KINDS[task["kind"]]
    with _one_blas_thread(), np.errstate(all="ignore"):
        return function(**task["params"], cancel=cancel)


def _one_blas_thread() -> contextlib.AbstractContextManager:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a bare NumPy worker: its BLAS default
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


__all__ = ["KINDS", "Cancelled", "run_task"]
