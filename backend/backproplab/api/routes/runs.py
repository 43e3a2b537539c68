"""Headless runs: start, poll, export; and import of a run record."""

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError

from ...report import report_html
from ...runs.budget import OverBudget
from ...runs.manager import Refused
from .. import offload
from ..responses import StrictJSONResponse
from ..schemas import RunConfig, validate_config

router = APIRouter(tags=["runs"])


class RunStatus(BaseModel):
    id: str
    status: str
    steps_recorded: int
    error: str | None = None


def as_422(exc: ValidationError, loc: str = "body") -> RequestValidationError:
    """A pydantic error as FastAPI's 422, each path prefixed with where it came from."""
    return RequestValidationError(
        [{**e, "loc": (loc, *e["loc"])} for e in exc.errors(include_input=False)])


def _validate(data: Any, request: Request, loc: str = "body") -> RunConfig:
    try:
        return validate_config(data, request.app.state.settings.compute_budget)
    except ValidationError as exc:
        raise as_422(exc, loc) from None


@router.post("/api/runs", status_code=202, response_model=RunStatus)
def start_run(request: Request, config: dict = Body(..., examples=[{"depth": 20}])) -> RunStatus:
    """Start a headless run (422 when it could never fit in memory, 429 with
    Retry-After while the server is full)."""
    cfg = _validate(config, request)
    try:
        job = request.app.state.manager.start_headless(cfg.to_spec(), cfg.model_dump())
    except OverBudget as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(429, str(exc),
                            headers={"retry-after": f"{exc.retry_after:.0f}"}) from None
    return RunStatus(id=job.id, status=job.status, steps_recorded=0)


@router.delete("/api/runs/{run_id}", response_model=RunStatus)
async def cancel_run(request: Request, run_id: str) -> RunStatus:
    """Stop a run that is still going (its record so far is kept)."""
    job = _job(request, run_id)
    await request.app.state.manager.stop(job)
    return RunStatus(id=job.id, status=job.status, steps_recorded=job.steps_recorded,
                     error=job.error)


def _job(request: Request, run_id: str):
    found = request.app.state.manager.get(run_id)
    if found is None:
        raise HTTPException(404, f"no run {run_id[:64]!r} (finished runs are kept in memory "
                                 f"while their records fit in BACKPROPLAB_MAX_RECORD_BYTES)")
    return found


@router.get("/api/runs/{run_id}", response_class=StrictJSONResponse)
def get_run(request: Request, run_id: str) -> StrictJSONResponse:
    """Status, and the whole run record {schema, config, environment, theory, steps}."""
    job = _job(request, run_id)
    record = job.record()
    return StrictJSONResponse({"id": job.id, "status": job.status, "error": job.error,
                               "steps_recorded": len(record["steps"]), "record": record})


@router.get("/api/runs/{run_id}/export", response_class=StrictJSONResponse)
def export_run(request: Request, run_id: str) -> StrictJSONResponse:
    """The run record as a JSON file download."""
    job = _job(request, run_id)
    record = job.record()
    return StrictJSONResponse(record, headers={
        "content-disposition": f'attachment; filename="backproplab-{job.id}.json"'})


@router.get("/api/runs/{run_id}/report", response_class=HTMLResponse)
def report_run(request: Request, run_id: str) -> HTMLResponse:
    """A self-contained interactive HTML report of a run (plotly.js embedded)."""
    job = _job(request, run_id)
    record = job.record()
    if not record["steps"]:
        raise HTTPException(409, "the run has no recorded step yet")
    return HTMLResponse(report_html(record), headers={
        "content-disposition": f'attachment; filename="backproplab-{job.id}.html"'})


RECORD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "description": "a run record"}}}}}


@router.post("/api/report", response_class=HTMLResponse, openapi_extra=RECORD_BODY)
async def report_record(request: Request) -> Response:
    """The same report for an uploaded (e.g. imported) run record."""
    status, body = await offload.off_loop(offload.report_bytes, await request.body())
    return Response(body, status_code=status, media_type="text/html" if status == 200 else
                    "application/json", headers={
        "content-disposition": 'attachment; filename="backproplab-report.html"'}
        if status == 200 else None)


@router.post("/api/runs/import", response_class=StrictJSONResponse, openapi_extra=RECORD_BODY)
async def import_run(request: Request) -> Response:
    """Validate an uploaded run record (422 names the bad field) and return it normalized
    (parsed and validated off the event loop, large records in a separate process)."""
    status, body = await offload.off_loop(offload.import_bytes, await request.body())
    return Response(body, status_code=status, media_type="application/json")
