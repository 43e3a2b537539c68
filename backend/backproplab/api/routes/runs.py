"""Headless runs: start, poll, export; and import of a run record."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ...report import report_html
from ...runs.jsonl import RecordFormatError, parse_record
from ...runs.manager import Job, Refused
from ..deps import ConfigBody, ManagerDep, RecordBody, SettingsDep, as_422, run_config
from ..models import Message, RunState, RunStatus
from ..records import RunRecord, validate_record
from ..responses import StrictJSONResponse

router = APIRouter(tags=["runs"])

NOT_FOUND = {404: {"model": Message, "description": "no such run"}}
# the report routes answer HTML, their errors JSON
JSON_MESSAGE = {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}


def get_job(run_id: str, manager: ManagerDep, settings: SettingsDep) -> Job:
    """The run of the path's `run_id`, or a 404."""
    found = manager.get(run_id)
    if found is None:
        raise HTTPException(404, f"no run {run_id!r} (runs are kept in memory, the newest "
                                 f"{settings.max_stored_runs})")
    return found


JobDep = Annotated[Job, Depends(get_job)]


@router.post("/api/runs", status_code=202, response_model=RunStatus,
             responses={429: {"model": Message, "description": "every job slot is busy"}})
def start_run(config: ConfigBody, manager: ManagerDep, settings: SettingsDep) -> RunStatus:
    """Start a headless run (429 when every job slot is busy)."""
    cfg = run_config(config, settings)
    try:
        job = manager.start_headless(cfg.to_spec(), cfg.model_dump())
    except Refused as exc:
        raise HTTPException(429, str(exc)) from None
    return RunStatus(id=job.id, status=job.status, steps_recorded=0)


@router.get("/api/runs/{run_id}", response_model=RunState, response_class=StrictJSONResponse,
            responses=NOT_FOUND)
def get_run(job: JobDep) -> StrictJSONResponse:
    """Status, and the whole run record {schema, config, environment, theory, steps}."""
    record = job.record()
    return StrictJSONResponse({"id": job.id, "status": job.status, "error": job.error,
                               "steps_recorded": len(job.steps), "record": record})


@router.get("/api/runs/{run_id}/export", response_model=RunRecord,
            response_class=StrictJSONResponse, responses=NOT_FOUND)
def export_run(job: JobDep) -> StrictJSONResponse:
    """The run record as a JSON file download."""
    record = job.record()
    return StrictJSONResponse(record, headers={
        "content-disposition": f'attachment; filename="backproplab-{job.id}.json"'})


@router.get("/api/runs/{run_id}/report", response_class=HTMLResponse,
            responses={404: {"description": "no such run", "content": JSON_MESSAGE},
                       409: {"description": "no step yet", "content": JSON_MESSAGE}})
def report_run(job: JobDep) -> HTMLResponse:
    """A self-contained interactive HTML report of a run (plotly.js embedded)."""
    record = job.record()
    if not record["steps"]:
        raise HTTPException(409, "the run has no recorded step yet")
    return HTMLResponse(report_html(record), headers={
        "content-disposition": f'attachment; filename="backproplab-{job.id}.html"'})


@router.post("/api/report", response_class=HTMLResponse)
def report_record(record: RecordBody) -> HTMLResponse:
    """The same report for an uploaded (e.g. imported) run record."""
    try:
        normalized = validate_record(record)
    except ValidationError as exc:
        raise as_422(exc) from None
    if not normalized["steps"]:
        raise HTTPException(422, "the record has no steps")
    return HTMLResponse(report_html(normalized), headers={
        "content-disposition": 'attachment; filename="backproplab-report.html"'})


def import_body(body: bytes) -> StrictJSONResponse:
    """One JSON document or JSON lines, validated and normalized (a 422 in words)."""
    try:
        return StrictJSONResponse(validate_record(parse_record(body)))
    except RecordFormatError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValidationError as exc:
        raise as_422(exc) from None


@router.post("/api/runs/import", response_model=RunRecord, response_class=StrictJSONResponse,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/RunRecord"}}}}})
async def import_run(request: Request) -> StrictJSONResponse:
    """Validate an uploaded run record (422 names the bad field) and return it normalized:
    one JSON document, or the JSON lines backproplab.watch writes (even cut short by a
    killed script); a watched model's record comes back in its own schema."""
    return await run_in_threadpool(import_body, await request.body())
