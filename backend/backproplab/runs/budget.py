"""The cost model: how many bytes a piece of work will hold at its peak, estimated
from its shape before anything is allocated, and the limits it is checked against.

Bytes are those of the work's dtype: parameters, gradients (one set per microbatch
until they are summed), optimizer state, saved activations (all layers, or for
√L checkpointing the segment boundaries plus one segment recomputed), the probe
buffers, the Jacobian spectrum's blocks and the recorded step in flight (recorded
steps go to the run store on disk as they are produced, so they hold no memory).
The tests compare these estimates with the resident memory a process gains.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..model.spec import RunSpec

DTYPE_BYTES = {"float32": 4, "float64": 8, "bfloat16": 2, "tf32": 4}
PROBE_BYTES = 8  # probe reductions run in float64
SAVED_PER_LAYER = {"none": 3, "layernorm": 8}  # (rows × width) arrays a layer keeps
OPTIMIZER_COPIES = {"sgd": 0, "momentum": 2, "adam": 5}  # state + its update temporaries
RECORD_LAYER_BYTES = 420  # one layer of a stored step (encoded JSON), besides the below
RECORD_BIN_BYTES = 8
RECORD_SAMPLE_BYTES = 24
SPECTRUM_VALUE_BYTES = 24


@dataclass(frozen=True)
class Cost:
    """What a piece of work holds at its peak, by part, and its multiply-adds."""

    what: str
    parts: dict[str, int] = field(default_factory=dict)
    work: float = 0.0

    @property
    def bytes(self) -> int:
        return int(sum(self.parts.values()))

    def describe(self) -> str:
        big = sorted(self.parts.items(), key=lambda kv: -kv[1])[:3]
        detail = ", ".join(f"{name} {human(n)}" for name, n in big if n > 0)
        return f"about {human(self.bytes)}" + (f" ({detail})" if detail else "")


class OverBudget(ValueError):
    """Work that could never fit: HTTP 422 / an error frame, not a retry."""

    def __init__(self, cost: Cost, limit: int, setting: str, hint: str = ""):
        self.cost, self.limit, self.setting = cost, limit, setting
        super().__init__(
            f"this {cost.what} needs {cost.describe()}, over the limit of {human(limit)} "
            f"(setting {setting}){hint}")


def human(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def machine_memory() -> int:
    """Physical memory, or the cgroup's limit where that is lower (containers)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def _params(spec: RunSpec) -> int:
    return sum(fo * fi + fo for fo, fi in spec.layer_sizes)


def record_step_bytes(spec: RunSpec) -> int:
    """One recorded step, encoded: per layer the scalars, two histograms, δ samples."""
    per_layer = (RECORD_LAYER_BYTES + 2 * spec.record.hist_bins * RECORD_BIN_BYTES
                 + spec.record.delta_samples * RECORD_SAMPLE_BYTES)
    spectrum = 0
    if spec.record.jacobian_every:
        spectrum = min(spec.width, spec.record.jacobian_topk if spec.width > 256 else
                       spec.width) * SPECTRUM_VALUE_BYTES
    return (spec.depth + 1) * per_layer + spectrum + 200


def run_cost(spec: RunSpec) -> Cost:
    """A training run: its engine's arrays at their peak, and the step it records
    (the step, its encoding and its frame: the run store has the ones before)."""
    b = DTYPE_BYTES.get(spec.dtype, 4)
    n_params = _params(spec)
    rows = -(-spec.batch_size // spec.microbatches)
    width = max(spec.width, spec.out_features)
    kept_layers = spec.depth if spec.segments == 1 else \
        spec.segments + -(-spec.depth // spec.segments)
    saved = kept_layers * SAVED_PER_LAYER[spec.norm] * rows * width * b
    # the probe collector's float64 subsample stacks (z, a, δ) and per-example δ norms
    from ..engines.probes import subsample_size

    n_sub = subsample_size(rows, spec.width)
    probes = (spec.depth + 1) * (3 * n_sub * width + 4 * rows) * PROBE_BYTES
    jacobian = 0
    if spec.record.jacobian_every:
        block = spec.width if spec.width <= 256 else min(spec.record.jacobian_topk, spec.width)
        jacobian = 6 * spec.width * block * b + spec.depth * spec.width * b
    parts = {
        "parameters": n_params * b,
        "gradients": (spec.microbatches + 1) * n_params * b,
        "optimizer state": OPTIMIZER_COPIES[spec.optimizer] * n_params * b,
        "saved activations": saved,
        "probe buffers": probes,
        "Jacobian spectrum": jacobian,
        "recorded step": 3 * record_step_bytes(spec),
    }
    return Cost("run", parts, work=float(spec.work))


def step_flops(spec: RunSpec) -> float:
    """Floating-point operations of one training step (forward 2, backward 4 per
    multiply-add), and of its Jacobian spectrum when one is recorded; with the
    initialization's draws for the first step, what a scheduler expects of a new run."""
    flops = 6.0 * sum(fo * fi for fo, fi in spec.layer_sizes) * spec.batch_size
    if spec.record.jacobian_every:
        block = spec.width if spec.width <= 256 else min(spec.record.jacobian_topk, spec.width)
        flops += 2.0 * 13 * spec.depth * spec.width**2 * block
    return flops + 20.0 * _params(spec)


def phase_cost(grid: int, depth: int, width: int, batch: int, measured: bool,
               dtype: str = "float32") -> Cost:
    """A phase diagram. Measured: one row of the grid at a time, every layer's
    weights (G, W, W) and pre-activations (G, B, W) kept for the backward pass."""
    points = grid * grid
    parts = {"analytic maps": 16 * points * 8 * 64}
    work = float(points * depth)
    if measured:
        b = DTYPE_BYTES[dtype]
        per_row = grid * depth * (width * width + batch * width) * b
        parts["networks of one grid row"] = per_row + 4 * grid * batch * width * b
        work += float(points * depth * width * width * batch)
    return Cost("phase diagram", parts, work)


def jacobian_modes_cost(depth: int, width: int, input_dim: int) -> Cost:
    """The full Jacobian by forward and by reverse passes (tape inspection)."""
    n = max(width, input_dim)
    parts = {"Jacobians and tapes": 2 * (depth + 4) * n * n * 4}
    return Cost("Jacobian comparison", parts, float(depth * n * n * (width + input_dim)))


def default_sessions(memory: int) -> int:
    """Live runs admitted at once: 64, or one per 128 MiB of memory where more."""
    return max(64, min(4096, memory // (128 << 20)))


def fits(cost: Cost, limit: int) -> bool:
    return cost.bytes <= limit and math.isfinite(cost.work)
