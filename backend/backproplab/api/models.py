"""Response models of the JSON endpoints, for OpenAPI and for clients.

Large or non-finite payloads (records, grids, tape values) are still written by the
strict codec: a route declares the model as its `response_model` and returns a
`StrictJSONResponse`, which FastAPI sends as it is. `Num` is a number or one of
"NaN", "Infinity", "-Infinity"."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from typing_extensions import TypeAliasType

from .records import Num, RunRecord

RunStatusName = Literal["running", "done", "cancelled", "error"]
# an array of any rank as nested lists (a scalar at rank 0)
Tensor = TypeAliasType("Tensor", "Num | list[Tensor]")
Grid = list[list[Num]]


class Health(BaseModel):
    status: Literal["ok"]


class Info(BaseModel):
    version: str
    python: str
    numpy: str
    torch: str | None
    engines: list[str]
    devices: list[str]
    cuda_devices: list[str]
    limits: dict[str, float | int | str | list[str]] = Field(
        description="every setting (BACKPROPLAB_* environment variables) by name")


class ConfigSchema(RootModel[dict[str, Any]]):
    """The JSON schema of RunConfig (choices, bounds, defaults of every field)."""


class Message(BaseModel):
    """An error in words (404, 409, 429)."""

    detail: str


class RunStatus(BaseModel):
    id: str
    status: RunStatusName
    steps_recorded: int
    error: str | None = None


class RunState(RunStatus):
    """A run's status and its whole record so far."""

    record: RunRecord


class CriticalPoint(BaseModel):
    sigma_b2: Num
    sigma_w2: Num | None


class AnalyticPhase(BaseModel):
    """χ₁ at the fixed point and log10 ‖δ(1)‖²/‖δ(L)‖² predicted; rows σ_b², columns σ_w²."""

    activation: str
    depth: int
    sigma_w2: list[Num]
    sigma_b2: list[Num]
    chi1: Grid
    log10_grad_ratio: Grid
    critical_line: list[CriticalPoint]


class MeasuredPhase(BaseModel):
    """The same grid measured on networks at initialization."""

    activation: str
    depth: int
    width: int
    batch: int
    sigma_w2: list[Num]
    sigma_b2: list[Num]
    measured_chi1: Grid
    log10_grad_ratio: Grid
    seconds: Num
    backend: str


class PhaseDiagram(BaseModel):
    analytic: AnalyticPhase
    measured: MeasuredPhase | None = Field(None, description="only with measured=true")


class GraphNode(BaseModel):
    id: int
    op: str
    label: str
    shape: list[int]
    params: dict[str, Any]
    is_output: bool


class GraphEdge(BaseModel):
    source: int
    target: int
    arg: int


class TapeGraph(BaseModel):
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    output: int


class Cotangent(BaseModel):
    to: int
    label: str
    value: Tensor


class BackwardStep(BaseModel):
    """One node of the backward pass: the cotangent it receives and what it sends on."""

    kind: Literal["node"]
    index: int
    op: str
    label: str
    input_shapes: list[list[int]]
    output_shape: list[int]
    cotangent_in: Tensor
    cotangents_out: list[Cotangent]


class Recurrence(BaseModel):
    """δ(l) = (W(l+1)ᵀ δ(l+1)) ⊙ σ′(z(l)) in numbers, beside the tape's δ(l)."""

    layer: int
    dense_node: int
    activation_node: int
    W_next: Tensor
    delta_next: Tensor
    sigma_prime: Tensor
    delta: Tensor
    delta_from_tape: Tensor


class Tangent(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: int = Field(alias="from")
    value: Tensor | None


class ForwardStep(BaseModel):
    """One node of a forward-mode pass: the tangents in, the tangent out."""

    kind: Literal["node"]
    index: int
    op: str
    label: str
    tangents_in: list[Tangent]
    tangent_out: Tensor


class TapeInspection(BaseModel):
    graph: TapeGraph
    steps: list[BackwardStep]
    recurrences: list[Recurrence]
    gradients: dict[str, Tensor]
    forward: list[ForwardStep]
    input: Tensor
    names: list[str]


class JacobianModes(BaseModel):
    """A full Jacobian by n forward passes and by m reverse passes."""

    n_inputs: int
    n_outputs: int
    forward_passes: int
    reverse_passes: int
    forward_seconds: Num
    reverse_seconds: Num
    predicted_ratio: Num
    measured_ratio: Num
    max_abs_difference: Num
