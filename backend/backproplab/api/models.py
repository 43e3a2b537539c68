"""Response models of the JSON endpoints, for OpenAPI and for clients.

Large or non-finite payloads (records, grids, tape values) are still written by the
strict codec: a route declares the model as its `response_model` and returns a
`StrictJSONResponse`, which FastAPI sends as it is. `Num` is a number or one of
"NaN", "Infinity", "-Infinity"."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from typing_extensions import TypeAliasType

from .records import Num, RunRecord

RunStatusName = Literal["running", "done", "stopped", "interrupted", "error"]
Source = Literal["live", "headless", "imported", "watched", "experiment"]
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
    jax: str | None
    engines: list[str]
    devices: list[str]
    cuda_devices: list[str]
    dtypes: dict[str, list[str]] = Field(
        default_factory=dict, description="the dtypes each engine runs here, by engine")
    limits: dict[str, float | int | str | list[str]] = Field(
        description="every setting (BACKPROPLAB_* environment variables) by name")
    input_features: dict[str, int] = Field(
        default_factory=dict, description="input features of each data set but gaussian "
                                          "(whose input size is the config's input_dim)")


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

    name: str | None = None
    note: str | None = None
    source: Source | None = None
    created: float | None = Field(None, description="seconds since the epoch")
    summary: dict[str, Any] | None = Field(None, description="its key figures (RunSummary)")
    record: RunRecord


class RunSummary(BaseModel):
    """A stored run's index entry: what the history lists."""

    id: str
    name: str | None
    note: str | None
    created: float = Field(description="seconds since the epoch")
    updated: float
    source: Source
    status: RunStatusName
    error: str | None
    steps: int
    bytes: int = Field(description="what its steps, config, environment, theory occupy")
    config_hash: str = Field(description="the same config, whatever its key order")
    config: dict[str, Any]
    summary: dict[str, Any] = Field(
        description="final_step, final_loss, final_accuracy, min_loss, layers, "
                    "first_nonfinite {step, layer} (where δ or ∇W first turned NaN/±Inf), "
                    "delta_first and delta_last (‖δ‖ at the first and last hidden layer)")


class RunList(BaseModel):
    runs: list[RunSummary]
    total: int = Field(description="runs matching the filter, all pages")
    next: str | None = Field(description="`before` for the next, older page")


class RunEdit(BaseModel):
    """A new name and/or note (null or "" clears)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] | None = None
    note: Annotated[str, Field(max_length=4000)] | None = None


class ConfigField(BaseModel):
    field: str = Field(description='a config field, record fields as "record.every"')
    values: list[Any] = Field(description="each run's value, in the order of `runs`")
    differs: bool


class Comparison(BaseModel):
    """Runs side by side: each RunSummary with `last` (the flow profile at its last step:
    index, kind, delta_norm, grad_w_norm per layer) and `series` (step, loss, accuracy,
    delta_norm per layer, at most `points` evenly spaced steps); the config fields, the
    differing ones first."""

    runs: list[dict[str, Any]]
    fields: list[ConfigField]


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


class JaxprEquation(BaseModel):
    """One equation of a jaxpr, named by the tape node whose scope it carries."""

    node: int | None = Field(description="the tape node (backward: graph id; forward: the "
                                          "forward tape's index); None: no node's scope")
    scope: str = Field(description="JAX's name stack, e.g. transpose(jvp(dense#6))")
    primitive: str
    inputs: list[str]
    outputs: list[str]
    text: str


class JaxprWalk(BaseModel):
    """The same network's passes as JAX traces them (traced, not run)."""

    jax: str
    dtype: str
    backward: list[JaxprEquation] = Field(description="jax.vjp's backward pass: the "
                                                      "equations on the cotangent's path")
    forward: list[JaxprEquation] = Field(description="jax.jvp's forward mode: the equations "
                                                     "on the tangent's path")


class TapeInspection(BaseModel):
    graph: TapeGraph
    steps: list[BackwardStep]
    recurrences: list[Recurrence]
    gradients: dict[str, Tensor]
    forward: list[ForwardStep]
    input: Tensor
    names: list[str]
    jaxpr: JaxprWalk | None = Field(None, description="None where jax is not installed")


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


class ProgramStats(BaseModel):
    """One jitted program: its jaxpr, its HLO before and after XLA, XLA's cost model."""

    jaxpr_equations: int = Field(description="equations, nested jaxprs counted once")
    equations_executed: int = Field(description="operations when run op by op (a scan's "
                                                "body once per iteration)")
    hlo_before: int = Field(description="HLO instructions before XLA's optimization")
    hlo_after: int = Field(description="HLO operations after it (outside fused computations)")
    fusions: int
    bytes_before: float = Field(description="bytes accessed, cost model, before optimization")
    bytes_after: float = Field(description="bytes accessed, cost model, after optimization")
    compile_s: float


class CompileReport(BaseModel):
    """The JAX training step of a network compiled and timed (GET /api/compile)."""

    forward: ProgramStats
    step: ProgramStats = Field(description="forward, backward and the update")
    compile_s: float
    jit_ms: float = Field(description="the jitted step")
    op_by_op_ms: float | None = Field(description="the step under jax.disable_jit()")
    torch_ms: float | None = Field(description="the torch engine's eager step")
    jax: str
    device: str
    dtype: str
    summary: str = Field(description="one sentence on what fusion did to the backward pass")
