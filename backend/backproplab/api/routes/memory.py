"""Memory and compute of the backward pass: saved activations per checkpointing
strategy over depth, recomputation, microbatches — measured for this network."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from ...engines import memory
from ...engines.torch_engine import resolve_device
from ...model.spec import RecordSpec, RunSpec
from ..deps import MeasurementsDep, SettingsDep, run_config
from ..measuring import MEASUREMENT_ANSWERS
from ..records import Num
from ..responses import StrictJSONResponse
from .theory import config_query_parameters

router = APIRouter(tags=["memory"])

# multiply-adds of all metered passes together (3 strategies × each meter × depths):
# a few seconds on one core; and the largest un-checkpointed activations measured
MAX_MEMORY_WORK = 2.5e10
MAX_MEMORY_BYTES = 1 << 30


class Meter(BaseModel):
    """One strategy on one meter, per depth; slope: of log peak over log depth."""

    peak_bytes: list[int]
    forward_ops: list[int] = Field(description="forward operations evaluated, "
                                               "recomputation included")
    extra_forward: list[Num] = Field(description="forward work recomputed, as a fraction "
                                                 "of one forward pass")
    time_s: list[Num] = Field(description="one forward and backward pass")
    slope: Num


class Strategy(Meter):
    """The tape's meter, torch autograd's (saved-tensor hooks or CUDA's allocator) and
    JAX's (the residuals jax.vjp keeps; segments jax.checkpoint-ed)."""

    torch: Meter | None = None
    jax: Meter | None = None


class CurrentPoint(BaseModel):
    depth: int
    strategy: str
    peak_bytes: int
    torch_peak_bytes: int | None = None
    jax_peak_bytes: int | None = None


class MicrobatchRow(BaseModel):
    """k parts accumulated: the peak saved bytes, and the gradient's largest relative
    difference from the full batch's (max over parameters of max|g−g₁|/max|g₁|)."""

    k: int
    peak_bytes: int
    max_rel_diff: Num
    torch_peak_bytes: int | None = None
    torch_max_rel_diff: Num | None = None
    jax_peak_bytes: int | None = None
    jax_max_rel_diff: Num | None = None


class MemoryReport(BaseModel):
    depths: list[int]
    capped: str | None = Field(None, description="why the depths stop short of 1000")
    width: int
    batch_size: int
    dtype: str
    every: int = Field(description="layers per segment of the 'every' strategy")
    engines: list[str]
    torch_meter: str
    jax_meter: str | None = Field(None, description="what JAX's meter counts (None: no jax)")
    strategies: dict[str, Strategy]
    current: CurrentPoint
    microbatches: list[MicrobatchRow]


def _key(spec: RunSpec) -> RunSpec:
    """What the measurement depends on (not the step count, rate or what is recorded)."""
    return spec.replace(steps=1, lr=0.01, optimizer="sgd", clip=None, delta_clip=None,
                        record=RecordSpec(), engine="numpy")


@router.get("/api/memory", response_model=MemoryReport, response_class=StrictJSONResponse,
            openapi_extra={"parameters": config_query_parameters()},
            responses={422: {"description": "an invalid config field, or a network too "
                                            "large to measure"},
                       **MEASUREMENT_ANSWERS})
async def memory_report(request: Request, settings: SettingsDep,
                        measurements: MeasurementsDep) -> StrictJSONResponse:
    """Peak bytes of activations saved for the backward pass of this network (query: any
    RunConfig field) per checkpointing strategy, at log-spaced depths 8…1000 capped by
    a compute budget, on the tape's meter, torch autograd's and JAX's; recomputed forward
    work, time, log-log slopes; this network's point; k microbatches."""
    spec = run_config(dict(request.query_params), settings, loc="query").to_spec()
    grid = memory.depth_grid()
    meters = len(memory.available_meters())
    depths = memory.affordable_depths(spec, grid, MAX_MEMORY_WORK, MAX_MEMORY_BYTES, meters)
    if len(depths) < 2:
        raise HTTPException(422, f"network too wide to measure over depth: width "
                                 f"{spec.width} and batch {spec.batch_size} leave fewer "
                                 f"than two depths within the compute budget "
                                 f"({MAX_MEMORY_WORK:.3g} multiply-adds)")
    if memory.pass_work(spec, spec.depth) * 3 * meters > MAX_MEMORY_WORK:
        raise HTTPException(422, f"this network (depth {spec.depth}) is too large to "
                                 f"measure within the compute budget "
                                 f"({MAX_MEMORY_WORK:.3g} multiply-adds)")
    try:
        device = "cuda" if spec.engine == "torch" and resolve_device(spec.device) == "cuda" \
            else "cpu"
    except ValueError as exc:  # cuda asked for where there is none
        raise HTTPException(422, f"device: {exc}") from None
    key = (_key(spec), tuple(depths), device)
    measured = await measurements["memory"].run(
        request, key, lambda check: memory.memory_report(key[0], key[1], device=device,
                                                         check=check))
    report = {**measured, "capped": None}
    if depths[-1] < grid[-1]:
        report["capped"] = (f"depths above {depths[-1]} are left out: width {spec.width} "
                            f"and batch {spec.batch_size} would exceed the compute budget")
    return StrictJSONResponse(report)
