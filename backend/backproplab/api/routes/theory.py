"""Mean-field predictions for a config, and phase diagrams."""

from typing import Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request

from ...engines import theory_for
from ...model.activations import ACTIVATION_NAMES
from ...theory import phase
from ..deps import SettingsDep, run_config
from ..models import PhaseDiagram
from ..records import Theory
from ..responses import StrictJSONResponse
from ..schemas import RunConfig

router = APIRouter(tags=["theory"])

MAX_PHASE_WORK = 2e9  # grid points · width² · depth for a measured diagram


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


@router.get("/api/phase", response_model=PhaseDiagram, response_class=StrictJSONResponse)
def phase_diagram(
    activation: Literal[ACTIVATION_NAMES] = "tanh",
    depth: int = Query(20, ge=1, le=1000),
    grid: int = Query(24, ge=2, le=64),
    w2_min: float = Query(0.25, gt=0, le=20), w2_max: float = Query(4.0, gt=0, le=20),
    b2_min: float = Query(0.0, ge=0, le=5), b2_max: float = Query(0.5, ge=0, le=5),
    measured: bool = False,
    width: int = Query(128, ge=2, le=1024), batch: int = Query(16, ge=1, le=128),
    seed: int = Query(0, ge=0),
) -> StrictJSONResponse:
    """χ₁ over (σ_w², σ_b²) with the critical line; `measured=true` also builds the
    networks and measures them (all grid points in one batched pass)."""
    if w2_min >= w2_max or b2_min > b2_max:
        raise HTTPException(422, "ranges must be increasing: w2_min < w2_max, b2_min <= b2_max")
    work = grid * grid * width * width * depth
    if measured and work > MAX_PHASE_WORK:
        raise HTTPException(422, f"measured diagram too large: grid²·width²·depth = "
                                 f"{work:.3g} > {MAX_PHASE_WORK:.3g}")
    out = {"analytic": phase.analytic_grid(activation, (w2_min, w2_max), (b2_min, b2_max),
                                           grid, depth)}  # cached: repeats cost nothing
    if measured:
        w2 = np.linspace(w2_min, w2_max, grid)
        b2 = np.linspace(b2_min, b2_max, grid)
        out["measured"] = phase.measured(activation, w2, b2, depth, width, batch, seed=seed)
    return StrictJSONResponse(out)
