"""Mean-field predictions for a config, the spread of a seed ensemble at
initialization, and phase diagrams."""

import threading
import time
from typing import Annotated

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ...engines import Cancelled, theory_for
from ...engines.ensemble import (
    DEFAULT_SEEDS,
    MAX_DRAWS,
    MAX_SEEDS,
    MAX_WORK,
    auto_seeds,
    cached_seed_spread,
    ensemble_bytes,
    ensemble_work,
    weights_drawn,
    within_limits,
)
from ...runs.budget import Cost, OverBudget, phase_cost
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
    cfg = run_config(dict(request.query_params), settings, loc="query", trains=False)
    return StrictJSONResponse(theory_for(cfg.to_spec()))




class Quantiles(BaseModel):
    """Per hidden layer, over the ensemble (natural logs; an overflow counts as +∞)."""

    q10: list[float]
    q50: list[float]
    q90: list[float]
    mean: list[float] = Field(description="of the finite values")
    sd: list[float] = Field(description="of the finite values (sample sd)")


class SeedSpread(BaseModel):
    """‖δ(l)‖ at initialization over networks with seeds seed … seed+S−1."""

    seeds: list[int]
    layers: list[int] = Field(description="the hidden layers' indices")
    dtype: str
    batch_size: int
    ln_delta_norm: Quantiles = Field(description="of ln ‖δ(l)‖")
    ln_ratio_to_last: Quantiles = Field(description="of ln(‖δ(l)‖ / ‖δ(L)‖), L the last "
                                                    "hidden layer")
    nonfinite: list[int] = Field(description="networks whose ‖δ(l)‖ is NaN or ±∞, per layer")
    seconds: float


SEEDS_PARAMETER = {"name": "seeds", "in": "query", "required": False,
                   "schema": {"type": "integer", "minimum": 2, "maximum": MAX_SEEDS,
                              "default": DEFAULT_SEEDS},
                   "description": "networks in the ensemble"}


@router.get("/api/theory/spread", response_model=SeedSpread,
            response_class=StrictJSONResponse,
            openapi_extra={"parameters": config_query_parameters() + [SEEDS_PARAMETER]})
async def seed_spread(request: Request, settings: SettingsDep,
                      manager: ManagerDep) -> Response:
    """The spread a finite width makes expected: ‖δ(l)‖ at initialization over an
    ensemble of seeds of this config, in one batched pass (query: any RunConfig field,
    and `seeds`: by default 32, fewer (at least 8) where the limits need). Bounded in
    work, memory and time; cached."""
    query = dict(request.query_params)
    asked = query.pop("seeds", None)
    spec = run_config(query, settings, loc="query").to_spec()
    seeds = _seeds(asked) if asked is not None else auto_seeds(spec)
    if not within_limits(spec, seeds):
        raise HTTPException(422, f"the seed ensemble is too large for this network: {seeds} "
                                 f"networks need {ensemble_work(spec, seeds):.3g} multiply-adds "
                                 f"(limit {MAX_WORK:.3g}) and {weights_drawn(spec, seeds):.3g} "
                                 f"weights (limit {MAX_DRAWS:.3g}); ask for fewer seeds or a "
                                 f"smaller depth, width or batch")
    cost = Cost("seed ensemble", {"networks and their saved activations":
                                  ensemble_bytes(spec, seeds)}, ensemble_work(spec, seeds))
    return await bounded(request, cost, "the seed ensemble", settings, manager,
                         lambda check: cached_seed_spread(spec, seeds, check))


def _seeds(text: str) -> int:
    try:
        seeds = int(text)
    except ValueError:
        seeds = -1
    if not 2 <= seeds <= MAX_SEEDS:
        raise HTTPException(422, f"seeds must be a whole number from 2 to {MAX_SEEDS}, "
                                 f"not {text!r}")
    return seeds


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
    cost = phase_cost(p.grid, p.depth, p.width, p.batch, p.measured)

    def compute(check) -> dict:
        w2 = np.linspace(p.w2_min, p.w2_max, p.grid)
        b2 = np.linspace(p.b2_min, p.b2_max, p.grid)
        out = {"analytic": phase.analytic_grid(  # cached: repeats cost nothing
            p.activation, (p.w2_min, p.w2_max), (p.b2_min, p.b2_max), p.grid, p.depth,
            check=check)}
        if p.measured:
            out["measured"] = phase.measured(p.activation, w2, b2, p.depth, p.width, p.batch,
                                             seed=p.seed, check=check)
        return out

    return await bounded(request, cost, "the phase diagram", settings, manager, compute,
                         hint="ask for a smaller grid or depth")


async def bounded(request: Request, cost: Cost, what: str, settings: Settings,
                  manager: RunManager, compute, hint: str = "ask for a smaller network"
                  ) -> Response:
    """`compute(check)` in a worker thread under the memory ledger and the request time
    limit; `check()` (called between layers) raises once the client has gone or the
    time is up. 422: it could never fit; 429: not now; 503: too slow."""
    cancel = threading.Event()
    deadline = time.monotonic() + settings.max_request_seconds

    def check() -> None:
        if cancel.is_set():
            raise Cancelled()
        if time.monotonic() > deadline:
            raise TimeoutError()

    try:
        with manager.ledger.reserve(cost):
            return StrictJSONResponse(await until_disconnected(request, lambda: compute(check),
                                                               cancel, _HEAVY))
    except OverBudget as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(429, str(exc), headers={"retry-after": "5"}) from None
    except TimeoutError:
        raise HTTPException(503, f"{what} took longer than "
                                 f"{settings.max_request_seconds:g} s (setting "
                                 f"BACKPROPLAB_MAX_REQUEST_SECONDS); {hint}") from None
    except Cancelled:
        return Response(status_code=499)  # the client has gone; nobody reads this
