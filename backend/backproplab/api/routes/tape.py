"""Tape inspection: a small network's backward pass node by node, a forward-mode
pass, and the forward-vs-reverse cost of a full Jacobian."""

from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from ...engines.inspect import backprop_walk, jacobian_modes
from ...model.spec import RunSpec
from ...runs.budget import OverBudget, jacobian_modes_cost
from ...runs.manager import Refused
from ..deps import ManagerDep
from ..models import JacobianModes, TapeInspection
from ..responses import StrictJSONResponse
from ..schemas import Activation, Init

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


@router.post("/api/tape/inspect", response_model=TapeInspection,
             response_class=StrictJSONResponse)
def inspect(config: InspectConfig) -> StrictJSONResponse:
    """Graph, every backward step with its cotangents, the δ recurrence per hidden
    layer with its numbers, the gradients, and one forward-mode pass (a network of
    at most 5 × 6 units: its cost is bounded by the fields' limits)."""
    spec = RunSpec(**config.model_dump(exclude={"tangent_input"}), steps=0)
    return StrictJSONResponse(backprop_walk(spec, config.tangent_input))


@router.post("/api/tape/jacobian-modes", response_model=JacobianModes,
             response_class=StrictJSONResponse)
def jacobian(config: JacobianConfig, manager: ManagerDep) -> StrictJSONResponse:
    """Full Jacobian by n forward passes and by m reverse passes: counts and timings
    (its memory is admitted like a run's: 429 while the server's bound is taken)."""
    spec = RunSpec(**config.model_dump(), dataset="gaussian", steps=0)
    cost = jacobian_modes_cost(config.depth, config.width, config.input_dim)
    try:
        with manager.ledger.reserve(cost):
            return StrictJSONResponse(jacobian_modes(spec))
    except OverBudget as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(429, str(exc), headers={"retry-after": "5"}) from None
