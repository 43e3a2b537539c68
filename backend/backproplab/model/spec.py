"""The run description seen by the numeric layers: a plain frozen dataclass.

The API's pydantic `RunConfig` validates the same fields (bounds, choices) and
converts to this; the field names are the contract shared by the API, the CLI,
the URL state and exports.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .activations import ACTIVATION_NAMES
from .init import INIT_NAMES, INITS
from .norms import NORM_NAMES

__all__ = ["ACTIVATION_NAMES", "CLASSES", "DATASETS", "INIT_NAMES", "NORM_NAMES", "RecordSpec",
           "RunSpec"]

DATASETS = ("gaussian", "spirals", "circles", "xor", "digits", "mnist1d")
CLASSES = {"gaussian": 10, "spirals": 3, "circles": 2, "xor": 2, "digits": 10, "mnist1d": 10}
# input size of the data sets whose inputs are not 2-D points (gaussian: input_dim)
FEATURES = {"digits": 64, "mnist1d": 40}


@dataclass(frozen=True)
class RecordSpec:
    every: int = 1  # record every k steps (step 0 and the last step always)
    hist_bins: int = 24
    delta_samples: int = 8
    jacobian_every: int = 0  # 0: never; k: on step 0 and every k steps
    jacobian_topk: int = 32  # singular values kept when the width is too large for an SVD
    per_example: bool = False  # per layer, the distribution of per-example ‖∇W(l)‖


@dataclass(frozen=True)
class RunSpec:
    engine: str = "numpy"
    device: str = "auto"
    dtype: str = "float32"
    depth: int = 20
    width: int = 128
    activation: str = "tanh"
    init: str = "xavier_normal"
    sigma_w: float = 1.0
    sigma_b: float = 0.0
    residual: bool = False
    residual_scale: float | str = 1.0
    norm: str = "none"
    dataset: str = "gaussian"
    input_dim: int = 16
    loss: str = "mse"
    optimizer: str = "sgd"
    lr: float = 0.01
    batch_size: int = 64
    microbatches: int = 1
    clip: float | None = None  # global-norm clipping of the gradient
    delta_clip: float | None = None  # each element of each example's δ(l) kept in [−c, c]
    checkpoint: str = "none"  # none | sqrt (√L segments) | every (checkpoint_every layers)
    checkpoint_every: int = 4
    steps: int = 200
    seed: int = 0
    record: RecordSpec = field(default_factory=RecordSpec)

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> RunSpec:
        """A run config as plain JSON (a record's `config`: the record settings as a
        dict) as a RunSpec; TypeError for a field it does not have."""
        values = dict(config)
        values["record"] = RecordSpec(**values.get("record", {}))
        return cls(**values)

    @property
    def in_features(self) -> int:
        if self.dataset == "gaussian":
            return self.input_dim
        return FEATURES.get(self.dataset, 2)

    @property
    def out_features(self) -> int:
        return CLASSES[self.dataset]

    @property
    def layer_sizes(self) -> list[tuple[int, int]]:
        """(fan_out, fan_in) of each weight matrix: hidden layers, then the output layer."""
        sizes = [(self.width, self.in_features)]
        sizes += [(self.width, self.width)] * (self.depth - 1)
        sizes.append((self.out_features, self.width))
        return sizes

    @property
    def alpha(self) -> float:
        """The residual branch scale α (a(l) = a(l-1) + α·σ(z(l)))."""
        if isinstance(self.residual_scale, str):
            return 1.0 / math.sqrt(self.depth)
        return float(self.residual_scale)

    def is_residual_layer(self, index: int) -> bool:
        """Hidden layers whose input and output widths match carry a skip connection."""
        fan_out, fan_in = self.layer_sizes[index]
        return self.residual and index < self.depth and fan_in == fan_out

    @property
    def segments(self) -> int:
        """Checkpointed segments of the hidden layers (1: no checkpointing)."""
        if self.checkpoint == "sqrt":
            return max(1, round(math.sqrt(self.depth)))
        if self.checkpoint == "every":
            return -(-self.depth // max(self.checkpoint_every, 1))
        return 1

    @property
    def segment_bounds(self) -> list[tuple[int, int]]:
        """Hidden layers [lo, hi) of each segment: ≈√L near-equal ones for 'sqrt',
        checkpoint_every layers each (the last one shorter) for 'every'."""
        depth, n = self.depth, self.segments
        if self.checkpoint == "every":
            k = max(self.checkpoint_every, 1)
            return [(lo, min(lo + k, depth)) for lo in range(0, depth, k)]
        bounds = [round(j * depth / n) for j in range(n + 1)]
        return [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]

    @property
    def work(self) -> int:
        """depth·width²·batch·max(steps, 1) + init_work: what the compute budget limits."""
        return self.depth * self.width**2 * self.batch_size * max(self.steps, 1) \
            + self.init_work

    @property
    def init_work(self) -> int:
        """depth·width³/2 for an orthogonal initialization (a QR per layer), else 0."""
        orthogonal = INITS[self.init].distribution == "orthogonal"
        return self.depth * self.width**2 * (self.width // 2) if orthogonal else 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> RunSpec:
        return replace(self, **changes)

