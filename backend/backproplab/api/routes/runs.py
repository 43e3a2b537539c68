"""Headless runs: start, poll, export; and import of a run record."""

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from ...report import report_html
from ...runs.budget import OverBudget
from ...runs.manager import Job, Refused
from .. import offload
from ..deps import ConfigBody, ManagerDep, SettingsDep, run_config
from ..models import Message, RunState, RunStatus
from ..records import RunRecord
from ..responses import StrictJSONResponse

router = APIRouter(tags=["runs"])

NOT_FOUND = {404: {"model": Message, "description": "no such run"}}
# the report routes answer HTML, their errors JSON
JSON_MESSAGE = {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}


def get_job(run_id: str, manager: ManagerDep) -> Job:
    """The run of the path's `run_id`, or a 404."""
    found = manager.get(run_id)
    if found is None:
        raise HTTPException(404, f"no run {run_id[:64]!r} (finished runs are kept in memory "
                                 f"while their records fit in BACKPROPLAB_MAX_RECORD_BYTES)")
    return found


JobDep = Annotated[Job, Depends(get_job)]


@router.post("/api/runs", status_code=202, response_model=RunStatus,
             responses={429: {"model": Message, "description": "the server is full: retry "
                                                            "after Retry-After seconds"}})
def start_run(config: ConfigBody, manager: ManagerDep, settings: SettingsDep) -> RunStatus:
    """Start a headless run (422 when it could never fit in memory, 429 with
    Retry-After while the server is full)."""
    cfg = run_config(config, settings)
    try:
        job = manager.start_headless(cfg.to_spec(), cfg.model_dump())
    except OverBudget as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(429, str(exc),
                            headers={"retry-after": f"{exc.retry_after:.0f}"}) from None
    return RunStatus(id=job.id, status=job.status, steps_recorded=0)


@router.delete("/api/runs/{run_id}", response_model=RunStatus, responses=NOT_FOUND)
async def cancel_run(job: JobDep, manager: ManagerDep) -> RunStatus:
    """Stop a run that is still going (its record so far is kept)."""
    await manager.stop(job)
    return RunStatus(id=job.id, status=job.status, steps_recorded=job.steps_recorded,
                     error=job.error)


@router.get("/api/runs/{run_id}", response_model=RunState, response_class=StrictJSONResponse,
            responses=NOT_FOUND)
def get_run(job: JobDep) -> StrictJSONResponse:
    """Status, and the whole run record {schema, config, environment, theory, steps}."""
    record = job.record()
    return StrictJSONResponse({"id": job.id, "status": job.status, "error": job.error,
                               "steps_recorded": len(record["steps"]), "record": record})


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


RECORD_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/RunRecord"}}}}}


@router.post("/api/report", response_class=HTMLResponse, openapi_extra=RECORD_BODY)
async def report_record(request: Request) -> Response:
    """The same report for an uploaded (e.g. imported) run record (parsed and validated
    off the event loop, large records in a separate process)."""
    status, body = await offload.off_loop(offload.report_bytes, await request.body())
    if status != 200:
        return Response(body, status_code=status, media_type="application/json")
    return HTMLResponse(body, headers={
        "content-disposition": 'attachment; filename="backproplab-report.html"'})


@router.post("/api/runs/import", response_model=RunRecord, response_class=StrictJSONResponse,
             openapi_extra=RECORD_BODY)
async def import_run(request: Request) -> Response:
    """Validate an uploaded run record (422 names the bad field) and return it normalized:
    one JSON document, or the JSON lines backproplab.watch writes (even cut short by a
    killed script); a watched model's record comes back in its own schema. Parsed and
    validated off the event loop, large records in a separate process."""
    status, body = await offload.off_loop(offload.import_bytes, await request.body())
    return Response(body, status_code=status, media_type="application/json")
