"""The training step on JAX: one jitted XLA computation per step (see jax_step),
on the CPU, or on a GPU where a CUDA jaxlib is installed.

float64 without a process-wide flag: `jax_enable_x64` is also a thread-local
context (`jax.enable_x64`), and this engine traces, compiles and dispatches
every computation inside `jax.enable_x64(dtype == "float64")`. A float64 run
gets float64 arrays; a float32 run traces with x64 off, so no constant or
intermediate can widen to float64, whatever another run (or a notebook that set
the global flag) does. Tests check that a float32 step's program has no f64.

A recorded step is read back in one transfer; an unrecorded one not at all (JAX
dispatches asynchronously, so the host draws the next batch while the device
works). Cancellation is checked between steps: a step is one XLA call.
δ clipping and per-example gradients are traced into the step too (jax_delta).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from ..model import init_params
from ..model.spec import RecordSpec, RunSpec
from . import per_example as example
from . import probes
from .base import Engine, StepResult
from .optim import BETA1, BETA2


def jax_available() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def jax_devices() -> list[str]:
    """The platforms this jaxlib can run on: "cpu", and "cuda" with a CUDA jaxlib."""
    import jax

    found = ["cpu"]
    with contextlib.suppress(RuntimeError):
        if jax.devices("gpu"):
            found.append("cuda")
    return found


def resolve_device(device: str) -> Any:
    import jax

    if device == "cpu" or (device == "auto" and "cuda" not in jax_devices()):
        return jax.devices("cpu")[0]
    if "cuda" not in jax_devices():
        raise ValueError("device 'cuda' was asked for, but this jaxlib has no CUDA device "
                         "(install a CUDA jaxlib, or use device 'cpu')")
    return jax.devices("gpu")[0]


def compile_key(spec: RunSpec) -> RunSpec:
    """The spec with what the compiled step does not depend on set to defaults: runs
    that differ only in seed, learning rate, initialization or length share it."""
    record = RecordSpec(hist_bins=spec.record.hist_bins,
                        delta_samples=spec.record.delta_samples,
                        jacobian_topk=spec.record.jacobian_topk,
                        per_example=spec.record.per_example)
    return spec.replace(seed=0, lr=0.0, sigma_w=1.0, sigma_b=0.0, init="normal",
                        steps=1, record=record)


@functools.lru_cache(maxsize=64)
def compiled_step(key: RunSpec, probe: bool, spectrum: bool, update: bool):
    """The jitted step for a compile key; its state argument is donated (updated in
    place). XLA compiles it on the first call, once per argument dtype and device."""
    import jax

    from .jax_step import make_step

    return jax.jit(make_step(key, probe, spectrum, update), donate_argnums=0)


class JaxEngine(Engine):
    probe_mode = probes.ProbeMode.DEVICE  # reduced on the device, inside the step

    def __init__(self, spec: RunSpec, threads: int | None = None):
        import jax

        from .jax_step import stack_params
        from .jax_xp import JAX

        if spec.dtype not in ("float32", "float64"):
            raise ValueError(f"engine 'jax' supports float32 and float64, not {spec.dtype!r}")
        self.jax, self.xp = jax, JAX
        self.dtype = np.dtype(spec.dtype)
        self.x64 = spec.dtype == "float64"
        self.device = resolve_device(spec.device)
        with self.scope():
            self.spec, self.cancel = spec, None  # Engine's, but the state holds the params
            params = stack_params([self.to_device(p) for pair in init_params(spec)
                                   for p in pair])
            self.state = {"params": params}
            for slot in {"momentum": ["m"], "adam": ["m", "v"]}.get(spec.optimizer, []):
                self.state[slot] = jax.tree.map(jax.numpy.zeros_like, params)
            width, k = spec.width, min(spec.record.jacobian_topk, spec.width)
            gaussian = np.random.default_rng([spec.seed, 0x51]).standard_normal((width, k))
            self.q0 = self.to_device(np.linalg.qr(gaussian)[0])  # as jacobian.py starts
            units = probes.sampled_units(spec.seed, spec.width, spec.record.delta_samples)
            self.units = jax.device_put(np.asarray(units, np.int32), self.device)
        self.t = 0  # optimizer steps taken (Adam's bias correction)
        self.key = compile_key(spec)

    def scope(self) -> contextlib.AbstractContextManager:
        """x64 on for a float64 run, off for a float32 one, in this thread only."""
        return self.jax.enable_x64(self.x64)

    @property
    def device_name(self) -> str:
        return f"{self.device.platform} (jax {self.jax.__version__})"

    def to_device(self, array: np.ndarray) -> Any:
        return self.jax.device_put(np.asarray(array, dtype=self.dtype), self.device)

    def apply(self, updates: list) -> None:  # the update is part of the jitted step
        raise NotImplementedError

    @property
    def params(self) -> list:
        """[W(1), b(1), ..., W(L+1), b(L+1)] on the device."""
        from .jax_step import flat_params

        return flat_params(self.state["params"])

    def step_function(self, probe: bool, spectrum: bool, update: bool):
        return compiled_step(self.key, probe, spectrum, update)

    def inputs(self, step: int, update: bool) -> tuple:
        """The step's arguments after the state: data, hyperparameters, constants.
        Host arrays of the run's dtype: the jitted call moves them to the device in
        its own (fast) argument handling, next to the state's committed arrays."""
        spec = self.spec
        x, labels, targets = self.make_batch(step)
        t = self.t + 1 if update else max(self.t, 1)
        hyper = np.array([spec.lr, 1 - BETA1**t, 1 - BETA2**t])  # as Optimizer computes them
        cast = self.dtype
        return (np.asarray(x, cast), np.asarray(labels, np.int32), np.asarray(targets, cast),
                hyper.astype(cast), self.units, self.q0), labels

    def train_step(self, step: int, probe: bool, update: bool = True,
                   spectrum: bool = False) -> StepResult:
        spectrum = spectrum and probe
        with self.scope():
            args, labels = self.inputs(step, update)
            fn = self.step_function(probe, spectrum, update)
            self.state, out = fn(self.state, *args)
            if update:
                self.t += 1
            if not probe:
                return StepResult(out["loss"], out["output"], labels, None, None)
            got = self.jax.device_get(out)  # one transfer
        from .jax_probes import unpack

        per_example = None
        if self.spec.record.per_example:  # (packed, norms (L+1, B), mean errors (L+1,))
            got, norms, errors = got
            per_example = [example.from_norms(np.asarray(n, np.float64), float(e))
                           for n, e in zip(norms, errors, strict=True)]
        packed = np.asarray(got, dtype=np.float64)
        summary, loss, output, sv = unpack(self.spec, packed, spectrum)
        # ‖g‖ = √Σ(‖∇W‖² + ‖∇b‖²) before clipping, and the factor the step applied
        norm = float(np.sqrt(np.sum(summary.grad_w_norm ** 2 + summary.grad_b_norm ** 2)))
        clip = self.spec.clip
        factor = None if clip is None else \
            (clip / norm if np.isfinite(norm) and norm > clip else 1.0)
        return StepResult(loss, output, labels, None, None, summary=summary, spectrum=sv,
                          grad_norm=norm, clip_factor=factor, per_example=per_example)
