"""Tape inspection: a small network's backward pass node by node, a forward-mode
pass, and the forward-vs-reverse cost of a full Jacobian."""

import threading
from typing import Literal

import anyio
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...engines import Cancelled
from ...engines.inspect import backprop_walk, jacobian_modes
from ...model.spec import RunSpec
from ...runs.budget import OverBudget, jacobian_modes_cost
from ...runs.manager import Refused
from ..deps import ManagerDep, MeasurementsDep
from ..measuring import MEASUREMENT_ANSWERS, until_disconnected
from ..models import JacobianModes, TapeInspection
from ..responses import StrictJSONResponse
from ..schemas import Activation, Init, not_a_boolean

router = APIRouter(tags=["tape"])


class InspectConfig(BaseModel):
    """A network small enough to read every number of its backward pass."""

    model_config = ConfigDict(extra="ignore")
    depth: int = Field(2, ge=1, le=5)
    width: int = Field(3, ge=1, le=6)
    activation: Activation = "tanh"
    init: Init = "xavier_normal"
    sigma_w: float = Field(1.0, ge=0, le=100, allow_inf_nan=False)
    sigma_b: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    dataset: Literal["xor", "circles", "spirals"] = "xor"
    loss: Literal["mse", "cross_entropy"] = "mse"
    batch_size: int = Field(1, ge=1, le=4)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    tangent_input: int = Field(0, ge=0, le=1)
    _numbers = field_validator("*", mode="before")(not_a_boolean)


class JacobianConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    depth: int = Field(4, ge=1, le=50)
    width: int = Field(64, ge=1, le=256)
    input_dim: int = Field(16, ge=1, le=256)
    activation: Activation = "tanh"
    init: Init = "xavier_normal"
    sigma_w: float = Field(1.0, ge=0, le=100, allow_inf_nan=False)
    sigma_b: float = Field(0.0, ge=0, le=100, allow_inf_nan=False)
    seed: int = Field(0, ge=0, le=2**31 - 1)


# walks traced at once: each is milliseconds, but a class's worth of new shapes at once
# would otherwise take every thread the synchronous routes share
_WALKS = anyio.CapacityLimiter(2)


@router.post("/api/tape/inspect", response_model=TapeInspection,
             response_class=StrictJSONResponse)
async def inspect(config: InspectConfig, request: Request) -> StrictJSONResponse:
    """Graph, every backward step with its cotangents, the δ recurrence per hidden
    layer with its numbers, the gradients, one forward-mode pass, and JAX's trace of
    both (a network of at most 5 × 6 units: its cost is bounded by the fields' limits;
    two walks at a time, the others wait their turn)."""
    spec = RunSpec(**config.model_dump(exclude={"tangent_input"}), steps=0)
    try:
        walk = await until_disconnected(
            request, lambda: backprop_walk(spec, config.tangent_input), threading.Event(),
            _WALKS)
    except Cancelled:
        return StrictJSONResponse(None, status_code=499)  # the client has gone
    return StrictJSONResponse(walk)


@router.post("/api/tape/jacobian-modes", response_model=JacobianModes,
             response_class=StrictJSONResponse, responses=MEASUREMENT_ANSWERS)
async def jacobian(config: JacobianConfig, request: Request, manager: ManagerDep,
                   measurements: MeasurementsDep) -> StrictJSONResponse:
    """Full Jacobian by n forward passes and by m reverse passes: counts and timings.
    A measurement like the compiled and memory views: one at a time, a few waiting
    (429 beyond), stopped when its client leaves or its time is up, kept per config;
    its memory is admitted like a run's (429 while the server's bound is taken)."""
    spec = RunSpec(**config.model_dump(), dataset="gaussian", steps=0)
    cost = jacobian_modes_cost(config.depth, config.width, config.input_dim)
    def measure(check):
        with manager.ledger.reserve(cost):  # when its turn comes, not while it waits
            return jacobian_modes(spec, check=check)

    try:
        return StrictJSONResponse(await measurements["jacobian"].run(request, spec, measure))
    except OverBudget as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(429, str(exc), headers={"retry-after": "5"}) from None
