"""Mean-field predictions for a config, and phase diagrams."""

import threading
import time
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ...engines import Cancelled, theory_for
from ...runs.budget import OverBudget, phase_cost
from ...runs.manager import Refused, RunManager
from ...settings import Settings
from ...theory import phase
from ..deps import ManagerDep, SettingsDep, run_config
from ..measuring import until_disconnected
from ..models import PhaseDiagram
from ..records import Theory
from ..responses import StrictJSONResponse
from ..schemas import Activation, RunConfig

router = APIRouter(tags=["theory"])


def config_query_parameters() -> list[dict]:
    """RunConfig's top-level fields as optional query parameters, for OpenAPI (the route
    reads the query string as a whole, so that one validation names the bad field)."""
    fields = RunConfig.model_json_schema()["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema,
             "description": schema.get("description", "")}
            for name, schema in fields.items() if name != "record"]


@router.get("/api/theory", response_model=Theory, response_class=StrictJSONResponse,
            openapi_extra={"parameters": config_query_parameters()},
            responses={422: {"description": "an invalid config field, by name", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/"
                                                        "HTTPValidationError"}}}}})
def theory(request: Request, settings: SettingsDep) -> StrictJSONResponse:
    """The `theory` field of a run with this config (query: any RunConfig field)."""
    cfg = run_config(dict(request.query_params), settings, loc="query")
    return StrictJSONResponse(theory_for(cfg.to_spec()))


MAX_PHASE_WORK = 3.2e10  # grid points · width² · depth · batch for a measured diagram
_HEAVY = anyio.CapacityLimiter(2)  # phase diagrams computed at once (each one thread)


class PhaseRequest(BaseModel):
    """A phase diagram over (σ_w², σ_b²); `measured` also builds the networks."""

    model_config = ConfigDict(extra="forbid")
    activation: Activation = "tanh"
    depth: int = Field(20, ge=1, le=1000)
    grid: int = Field(24, ge=2, le=64)
    w2_min: float = Field(0.25, gt=0, le=20)
    w2_max: float = Field(4.0, gt=0, le=20)
    b2_min: float = Field(0.0, ge=0, le=5)
    b2_max: float = Field(0.5, ge=0, le=5)
    measured: bool = False
    width: int = Field(128, ge=2, le=1024)
    batch: int = Field(16, ge=1, le=128)
    seed: int = Field(0, ge=0, le=2**31 - 1)


@router.get("/api/phase", response_model=PhaseDiagram, response_class=StrictJSONResponse)
async def phase_diagram(request: Request, query: Annotated[PhaseRequest, Query()],
                        settings: SettingsDep, manager: ManagerDep) -> Response:
    """χ₁ over (σ_w², σ_b²) with the critical line; `measured=true` also builds the
    networks and measures them (one grid row at a time). Stops when the client leaves."""
    return await _phase(request, query, settings, manager)


@router.post("/api/phase", response_model=PhaseDiagram, response_class=StrictJSONResponse)
async def phase_diagram_post(request: Request, body: PhaseRequest, settings: SettingsDep,
                             manager: ManagerDep) -> Response:
    """The same, with the parameters as a JSON body."""
    return await _phase(request, body, settings, manager)


async def _phase(request: Request, p: PhaseRequest, settings: Settings,
                 manager: RunManager) -> Response:
    if p.w2_min >= p.w2_max or p.b2_min > p.b2_max:
        raise HTTPException(422, "ranges must be increasing: w2_min < w2_max, b2_min <= b2_max")
    work = p.grid * p.grid * p.width * p.width * p.depth * p.batch
    if p.measured and work > MAX_PHASE_WORK:
        raise HTTPException(422, f"measured diagram too large: grid²·width²·depth·batch = "
                                 f"{work:.3g} > {MAX_PHASE_WORK:.3g}")
    ledger = manager.ledger
    cost = phase_cost(p.grid, p.depth, p.width, p.batch, p.measured)
    cancel = threading.Event()
    deadline = time.monotonic() + settings.max_request_seconds

    def check() -> None:
        if cancel.is_set():
            raise Cancelled()
        if time.monotonic() > deadline:
            raise TimeoutError()

    def compute() -> dict:
        w2 = np.linspace(p.w2_min, p.w2_max, p.grid)
        b2 = np.linspace(p.b2_min, p.b2_max, p.grid)
        out = {"analytic": phase.analytic_grid(  # cached: repeats cost nothing
            p.activation, (p.w2_min, p.w2_max), (p.b2_min, p.b2_max), p.grid, p.depth,
            check=check)}
        if p.measured:
            out["measured"] = phase.measured(p.activation, w2, b2, p.depth, p.width, p.batch,
                                             seed=p.seed, check=check)
        return out

    try:
        with ledger.reserve(cost):
            return StrictJSONResponse(await until_disconnected(request, compute, cancel,
                                                                  _HEAVY))
    except OverBudget as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(429, str(exc), headers={"retry-after": "5"}) from None
    except TimeoutError:
        raise HTTPException(503, f"the phase diagram took longer than "
                                 f"{settings.max_request_seconds:g} s (setting "
                                 f"BACKPROPLAB_MAX_REQUEST_SECONDS); ask for a smaller grid "
                                 f"or depth") from None
    except Cancelled:
        return Response(status_code=499)  # the client has gone; nobody reads this
