"""The run record as a pydantic model: it validates an imported file field by field
(a 422 names the path of the bad field) and documents the exports in OpenAPI.

Routes still send records through the strict codec (`StrictJSONResponse`), never
through these models: a non-finite number is the string "NaN", "Infinity" or
"-Infinity" on the wire, and `Num` accepts and documents exactly that."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from ..runs.codec import NONFINITE, restore
from .schemas import RunConfig

_SCHEMA = re.compile(r"backproplab\.run/\d+")


def _run_schema(value: str) -> str:
    if not _SCHEMA.fullmatch(value):
        raise ValueError(f"{value[:60]!r} is not backproplab.run/1, the schema of a file "
                         "from Export or from watch()")
    return value


# the schema field of a run record: a version of "backproplab.run", said in words
RunSchema = Annotated[str, AfterValidator(_run_schema),
                      WithJsonSchema({"type": "string", "pattern": r"^backproplab\.run/\d+$"})]


def _number(value: Any) -> Any:
    if isinstance(value, str):
        if value in NONFINITE:
            return NONFINITE[value]
        raise ValueError('a number, or one of "NaN", "Infinity", "-Infinity"')
    return value


# a count, index or step: what JSON carries exactly everywhere (JavaScript's numbers,
# SQLite's INTEGER), so that what validates here also stores, reads and compares
MAX_INT = 2**53 - 1
Count = Annotated[int, Field(ge=0, le=MAX_INT)]

Num = Annotated[float, BeforeValidator(_number), WithJsonSchema({
    "anyOf": [{"type": "number"}, {"type": "string", "enum": list(NONFINITE)}],
    "description": 'a number; NaN and ±Inf as "NaN", "Infinity", "-Infinity"'})]


class Histogram(BaseModel):
    lo: Num
    hi: Num
    counts: list[Count] = Field(max_length=512)
    zero: Count | None = None
    nonfinite: Count | None = None


class PerExample(BaseModel):
    """The distribution of per-example ‖∇W_i(l)‖ over the batch, and mean_error:
    max|mean_i ∇W_i − ∇W| / max|∇W| against the batch gradient."""

    min: Num
    q25: Num
    median: Num
    q75: Num
    max: Num
    mean: Num
    mean_error: Num


class LayerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: Count
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
    per_example: PerExample | None = None


class Overflow(BaseModel):
    step: Count
    layer: Count


class StepRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: Count
    loss: Num
    accuracy: Num | None = None
    test_accuracy: Num | None = None  # on the held-out part of a real data set
    time_s: Num
    layers: list[LayerRecord] = Field(min_length=1, max_length=1001)
    jacobian_sv: list[Num] | None = Field(default=None, max_length=4096)
    grad_norm: Num | None = Field(None, description="‖g‖ over all parameters, before "
                                                    "clipping")
    clip_factor: Num | None = Field(None, description="min(1, clip/‖g‖): the factor g "
                                                      "was scaled by (1: not clipped)")
    overflow: Overflow | None = None


class Environment(BaseModel):
    """Where a run ran (versions, device); other keys are kept as they are."""

    model_config = ConfigDict(extra="allow")
    backproplab: str | None = None
    python: str | None = None
    numpy: str | None = None
    torch: str | None = None
    jax: str | None = None
    platform: str | None = None
    engine: str | None = None
    device: str | None = None
    dtype: str | None = None


class JacobianPrediction(BaseModel):
    model_config = ConfigDict(extra="allow")
    mean: Num | None = None
    normalized_variance: Num | None = None
    weights: Literal["gaussian", "orthogonal"] | None = None


class Theory(BaseModel):
    """The mean-field prediction for a config (`applies`: whether its assumptions hold;
    `notes`: why not, in words). Profiles are relative to the last layer."""

    model_config = ConfigDict(extra="allow")
    applies: bool
    notes: list[str] = []
    sigma_w2: Num | None = None
    sigma_b2: Num | None = None
    q_in: Num | None = None
    q_star: Num | None = None
    chi1: Num | None = None
    xi_grad: Num | None = None
    critical_sigma_w2: Num | None = None
    delta_norm2_profile: list[Num] | None = None
    grad_w_norm2_profile: list[Num] | None = None
    q_profile: list[Num] | None = None
    jacobian: JacobianPrediction | None = None


class RunRecord(BaseModel):
    """A run: {schema, config, environment, theory, steps}, as exported and imported."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: RunSchema = Field(alias="schema")
    config: RunConfig
    environment: Environment | None = None
    theory: Theory | None = None
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
    if isinstance(data, dict) and isinstance(data.get("config"), dict) \
            and data["config"].get("source") == "watched":  # a watched model's record
        from .watched_records import validate_watched

        return validate_watched(data)
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
