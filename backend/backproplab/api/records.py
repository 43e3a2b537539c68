"""The run record as a pydantic model, to validate an imported file field by field
(a 422 names the path of the bad field) and return it normalized."""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..runs.codec import NONFINITE, restore
from .schemas import RunConfig


def _number(value: Any) -> Any:
    if isinstance(value, str):
        if value in NONFINITE:
            return NONFINITE[value]
        raise ValueError('a number, or one of "NaN", "Infinity", "-Infinity"')
    return value


Num = Annotated[float, BeforeValidator(_number)]


class Histogram(BaseModel):
    lo: Num
    hi: Num
    counts: list[Annotated[int, Field(ge=0)]] = Field(max_length=512)
    zero: int | None = None
    nonfinite: int | None = None


class LayerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: int = Field(ge=0)
    kind: str | None = None
    z_mean: Num
    z_std: Num
    a_mean: Num
    a_std: Num
    saturated_frac: Num
    dead_frac: Num
    delta_norm: Num
    grad_w_norm: Num
    grad_b_norm: Num
    weight_norm: Num
    update_ratio: Num
    a_hist: Histogram
    delta_log_hist: Histogram
    delta_sample: list[Num] = Field(max_length=256)


class Overflow(BaseModel):
    step: int
    layer: int


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: int = Field(ge=0)
    loss: Num
    accuracy: Num | None = None
    test_accuracy: Num | None = None  # on the held-out part of a real data set
    time_s: Num
    layers: list[LayerRecord] = Field(min_length=1, max_length=1001)
    jacobian_sv: list[Num] | None = Field(default=None, max_length=4096)
    overflow: Overflow | None = None


class RunRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: str = Field(alias="schema", pattern=r"^backproplab\.run/\d+$")
    config: RunConfig
    environment: dict[str, Any] | None = None
    theory: dict[str, Any] | None = None
    steps: list[StepRecord] = Field(max_length=100_001)

    def normalized(self) -> dict[str, Any]:
        # values converted, nothing invented: fields stay as given, the config gets its defaults
        data = self.model_dump(by_alias=True, exclude_unset=True)
        data["config"] = self.config.model_dump()
        data.setdefault("theory", None)
        data.setdefault("environment", None)
        data["theory"] = restore(data["theory"])
        data["environment"] = restore(data["environment"])
        return data


def validate_record(data: Any) -> dict[str, Any]:
    """Validate an uploaded record (no compute budget: it was run elsewhere)."""
    record = RunRecord.model_validate(data, context={"compute_budget": math.inf})
    depth = record.config.depth
    for i, step in enumerate(record.steps):
        if len(step.layers) != depth + 1:
            from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

            raise ValidationError.from_exception_data("RunRecord", [InitErrorDetails(
                type=PydanticCustomError("layers", "expected depth + 1 = {n} layers, got {m}",
                                         {"n": depth + 1, "m": len(step.layers)}),
                loc=("steps", i, "layers"), input=None)])
    return record.normalized()
