"""RunConfig: the one validated description of a run (bounded fields, literal
choices), shared by the API, the CLI, the URL state and exports."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..model.spec import ACTIVATION_NAMES, INIT_NAMES, NORM_NAMES, RecordSpec, RunSpec

DEFAULT_COMPUTE_BUDGET = 2e11  # depth·width²·batch·steps

Activation = Literal[ACTIVATION_NAMES]  # the registries of backproplab.model
Init = Literal[INIT_NAMES]
Norm = Literal[NORM_NAMES]
Gain = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]


SWITCHES = ("residual", "per_example", "quick")  # the fields that are true/false


def not_a_boolean(value, info: ValidationInfo):
    """JSON true/false is not a number: `depth: true` is an error, not depth 1. (A
    model's `field_validator("*", mode="before")`; its switches are in SWITCHES.)"""
    if isinstance(value, bool) and info.field_name not in SWITCHES:
        raise ValueError("expected a number, not true/false")
    return value


class RecordConfig(BaseModel):
    """What each recorded step carries and how often."""

    model_config = ConfigDict(extra="forbid")
    every: int = Field(1, ge=1, le=100_000, description="record every k steps")
    hist_bins: int = Field(24, ge=4, le=128, description="histogram bins")
    delta_samples: int = Field(8, ge=0, le=64, description="δ components sampled per layer")
    jacobian_every: int = Field(0, ge=0, le=100_000,
                                description="Jacobian spectrum every k steps (0: never)")
    jacobian_topk: int = Field(32, ge=1, le=512,
                               description="singular values kept when the width is large")
    per_example: bool = Field(False, description="per layer, the distribution of "
                                                 "per-example gradient norms ‖∇W(l)‖")
    _numbers = field_validator("*", mode="before")(not_a_boolean)


class RunConfig(BaseModel):
    """A run: network, data, optimizer, what to record."""

    model_config = ConfigDict(extra="forbid")
    engine: Literal["numpy", "torch", "jax"] = Field(
        "numpy", description="jax: one jitted XLA computation per step")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "float64", "bfloat16", "tf32"] = Field(
        "float32", description="tf32: float32 tensors, TF32 matmuls (torch on CUDA)")
    depth: int = Field(20, ge=1, le=1000, description="hidden layers")
    width: int = Field(128, ge=1, le=4096, description="units per hidden layer")
    activation: Activation = "tanh"
    init: Init = "xavier_normal"
    sigma_w: Gain = Field(1.0, description="σ_w: N(0, σ_w²/fan_in) for 'normal', a gain "
                                           "on top of the named schemes")
    sigma_b: Gain = Field(0.0, description="σ_b: biases ~ N(0, σ_b²)")
    residual: bool = False
    residual_scale: Annotated[float, Field(ge=0.0, le=10.0, allow_inf_nan=False)] | \
        Literal["1/sqrt(depth)"] = 1.0
    norm: Norm = "none"
    dataset: Literal["gaussian", "spirals", "circles", "xor", "digits", "mnist1d"] = Field(
        "gaussian", description="digits: scikit-learn's 8×8 digits; mnist1d: MNIST-1D "
                                "(both 10 classes, 20% held out by the seed)")
    input_dim: int = Field(16, ge=1, le=4096, description="input size (gaussian data)")
    loss: Literal["mse", "cross_entropy"] = "mse"
    optimizer: Literal["sgd", "momentum", "adam"] = "sgd"
    lr: float = Field(0.01, gt=0.0, le=10.0, allow_inf_nan=False)
    batch_size: int = Field(64, ge=1, le=4096)
    microbatches: int = Field(1, ge=1, le=64, description="gradient accumulation parts")
    clip: Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False,
                                 description="global-norm clipping")] | None = None
    delta_clip: Annotated[float, Field(gt=0.0, le=1e6, allow_inf_nan=False,
                                       description="cap each element of every example's "
                                                   "δ(l) to [−c, c] in the backward "
                                                   "pass")] | None = None
    checkpoint: Literal["none", "sqrt", "every"] = Field(
        "none", description="sqrt: √L segments; every: a segment every checkpoint_every "
                            "layers (recomputed in the backward pass)")
    checkpoint_every: int = Field(4, ge=1, le=1000, description="layers per segment "
                                                                "(checkpoint 'every')")
    steps: int = Field(200, ge=0, le=100_000, description="0: analyse at initialization")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    record: RecordConfig = Field(default_factory=RecordConfig)
    _numbers = field_validator("*", mode="before")(not_a_boolean)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> RunConfig:
        if self.engine == "numpy" and self.device == "cuda":
            raise ValueError("device 'cuda' needs engine 'torch' or 'jax'")
        if self.engine != "torch" and self.dtype in ("bfloat16", "tf32"):
            raise ValueError(f"dtype '{self.dtype}' needs engine 'torch'")
        if self.dtype == "tf32" and self.device == "cpu":
            raise ValueError("dtype 'tf32' needs device 'cuda' (or 'auto' on a machine "
                             "with a GPU): TF32 is a mode of NVIDIA GPUs' matmuls")
        if self.microbatches > self.batch_size:
            raise ValueError(f"microbatches ({self.microbatches}) cannot exceed "
                             f"batch_size ({self.batch_size})")
        budget = (info.context or {}).get("compute_budget", DEFAULT_COMPUTE_BUDGET)
        spec = self.to_spec()
        work = spec.work
        if work > budget:
            raise ValueError(
                f"compute budget exceeded: depth·width²·batch·steps"
                f"{' (+ depth·width³/2: orthogonal init)' if spec.init_work else ''}"
                f" = {work:.3g} is over "
                f"this server's limit of {budget:.3g}; lower the steps, width, depth or "
                f"batch size (the limit is the server's setting BACKPROPLAB_COMPUTE_BUDGET)")
        return self

    def to_spec(self) -> RunSpec:
        data = self.model_dump()
        data["record"] = RecordSpec(**data["record"])
        return RunSpec(**data)


def validate_config(data: dict, compute_budget: float = DEFAULT_COMPUTE_BUDGET) -> RunConfig:
    return RunConfig.model_validate(data, context={"compute_budget": compute_budget})
