"""A watched model's run record as a pydantic model: the Lab's record schema with
named modules for layers and a config that says what was watched. Statistics a
module does not have (no parameters, not a rectifier, not reached this step) are
null; NaN and ±Inf are "NaN"/"Infinity"/"-Infinity" as everywhere."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from ..runs.codec import restore
from .records import Count, Histogram, Num, RunSchema

Name = Field(min_length=1, max_length=500)


class ModuleSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Name
    kind: str = Field(max_length=200)
    parameters: Count


class WatchedConfig(BaseModel):
    """What was watched: the model, its modules in forward order, how often."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["watched"]
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(max_length=200)
    parameters: Count
    trainable: Count
    modules: list[ModuleSummary] = Field(min_length=1, max_length=10_000)
    every: Count = Field(ge=1)
    hist_bins: int = Field(ge=4, le=128)
    dtype: str = Field(max_length=32)
    device: str = Field(max_length=64)
    scaler: bool = False


class WatchedLayer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: Count
    name: str = Name
    kind: str = Field(max_length=200)
    delta_norm: Num | None
    grad_w_norm: Num | None
    grad_b_norm: Num | None
    weight_norm: Num | None
    update_ratio: Num | None
    a_mean: Num | None
    a_std: Num | None
    saturated_frac: Num | None
    dead_frac: Num | None
    a_hist: Histogram | None
    delta_log_hist: Histogram | None


class FirstNonfinite(BaseModel):
    """The first step at which a value turned NaN/±Inf, where and in what."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    step: Count
    module: str | None = Field(default=None, max_length=500)
    in_: Literal["forward", "backward"] = Field(alias="in")
    what: Literal["output", "delta", "grad_w", "grad_b", "loss"]


class WatchedStep(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: Count
    loss: Num | None
    accuracy: Num | None = None
    time_s: Num
    layers: list[WatchedLayer] = Field(min_length=1, max_length=10_000)
    grad_norm: Num | None = None
    clip_factor: Num | None = None
    loss_scale: Num | None = None
    scaler_skipped: bool | None = None
    first_nonfinite: FirstNonfinite | None = None


class WatchedRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: RunSchema = Field(alias="schema")
    config: WatchedConfig
    environment: dict[str, Any] | None = None
    theory: None = None
    steps: list[WatchedStep] = Field(max_length=100_001)
    first_nonfinite: FirstNonfinite | None = None


def check_layers(config: WatchedConfig, steps: list[WatchedStep], offset: int = 0) -> None:
    """Every step has one layer per module of the config, named as there, in order."""
    names = [m.name for m in config.modules]
    for i, step in enumerate(steps):
        got = [layer.name for layer in step.layers]
        if got != names:
            raise ValidationError.from_exception_data("WatchedRecord", [InitErrorDetails(
                type=PydanticCustomError(
                    "layers", "expected the {n} modules of the config in its order, got {m} "
                              "layers", {"n": len(names), "m": len(got)}),
                loc=("steps", i + offset, "layers"), input=None)])


def dump_step(step: WatchedStep) -> dict[str, Any]:
    return step.model_dump(by_alias=True)


def validate_watched(data: Any) -> dict[str, Any]:
    """Validate a watched model's record and return it normalized (every field present)."""
    record = WatchedRecord.model_validate(data)
    check_layers(record.config, record.steps)
    out = record.model_dump(by_alias=True)
    out["environment"] = restore(out["environment"])
    return out
