"""Runs: start headless ones; the stored history (list, get, export, report, rename,
delete); runs compared; import of a run record (stored too)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...engines.runner import SCHEMA
from ...report import compare_report_html, report_html
from ...runs.budget import OverBudget
from ...runs.codec import encode
from ...runs.compare import MAX_COMPARED, compare
from ...runs.manager import STORED_STATUS, Refused
from ...runs.store import NotFound, RunStore
from .. import offload
from ..deps import ConfigBody, ManagerDep, SettingsDep, StoreDep, run_config
from ..models import Comparison, Message, RunEdit, RunList, RunState, RunStatus, RunSummary, Source
from ..offload import short
from ..records import RunRecord
from ..responses import StrictJSONResponse

router = APIRouter(tags=["runs"])

NOT_FOUND = {404: {"model": Message, "description": "no such run"}}
# the report routes answer HTML, their errors JSON
JSON_MESSAGE = {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}
IdList = Annotated[str, Query(description=f"2 to {MAX_COMPARED} run ids: ID,ID,...")]


def stored(store: RunStore, run_id: str) -> dict[str, Any]:
    """The stored run's index entry, or a 404."""
    try:
        return store.get(run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {short(run_id)!r}") from None


def compared(store: RunStore, ids: str, points: int = 300) -> dict[str, Any]:
    """The comparison of the listed runs; 422 for fewer than 2 or more than 8, 404 names
    an unknown one."""
    found = [i for i in (part.strip() for part in ids.split(",")) if i]
    if not 2 <= len(found) <= MAX_COMPARED:
        raise HTTPException(422, f"compare takes 2 to {MAX_COMPARED} run ids separated by "
                                 f"commas, got {len(found)}")
    try:
        return compare(store, found, points)
    except NotFound as exc:
        raise HTTPException(404, f"no stored run {short(exc.args[0])!r}") from None


@router.post("/api/runs", status_code=202, response_model=RunStatus,
             responses={429: {"model": Message, "description": "the server is full: retry "
                                                            "after Retry-After seconds"}})
def start_run(config: ConfigBody, manager: ManagerDep, settings: SettingsDep) -> RunStatus:
    """Start a headless run, stored as it goes (422 when it could never fit in memory,
    429 with Retry-After while the server is full)."""
    cfg = run_config(config, settings)
    try:
        job = manager.start_headless(cfg.to_spec(), cfg.model_dump())
    except OverBudget as exc:
        raise HTTPException(422, str(exc)) from None
    except Refused as exc:
        raise HTTPException(429, str(exc),
                            headers={"retry-after": f"{exc.retry_after:.0f}"}) from None
    return RunStatus(id=job.id, status="running", steps_recorded=0)


@router.get("/api/runs", response_model=RunList, response_class=StrictJSONResponse,
            responses={404: {"model": Message, "description": "no run `before` names"}})
def list_runs(store: StoreDep, source: Source | None = None,
              name: Annotated[str | None, Query(max_length=200,
                                                description="a part of the name")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              before: Annotated[str | None, Query(description="a run id: the runs older "
                                                              "than it")] = None,
              offset: Annotated[int, Query(ge=0, le=2**62)] = 0) -> StrictJSONResponse:
    """Stored runs, newest first (filter by source or name; paginated)."""
    try:
        runs = store.list(source=source, name=name, limit=limit, before=before, offset=offset)
    except NotFound:
        raise HTTPException(404, f"no stored run {short(before)!r} to page from") from None
    return StrictJSONResponse({"runs": runs, "total": store.count(source=source, name=name),
                               "next": runs[-1]["id"] if len(runs) == limit else None})


@router.get("/api/runs/compare", response_model=Comparison, response_class=StrictJSONResponse,
            responses={**NOT_FOUND, 422: {"model": Message, "description": "not 2 to 8 ids"}})
def compare_runs(store: StoreDep, ids: IdList,
                 points: Annotated[int, Query(ge=2, le=2000)] = 300) -> StrictJSONResponse:
    """Runs side by side: each one's last-step flow profile, loss and ‖δ‖ series, and
    every config field with each run's value (`differs` marks the ones that differ)."""
    return StrictJSONResponse(compared(store, ids, points))


@router.get("/api/runs/compare/report", response_class=HTMLResponse,
            responses={404: {"description": "no such run", "content": JSON_MESSAGE}})
def compare_report(store: StoreDep, ids: IdList) -> HTMLResponse:
    """The comparison as one self-contained HTML file (plotly.js embedded)."""
    return HTMLResponse(compare_report_html(compared(store, ids)), headers={
        "content-disposition": 'attachment; filename="backproplab-compare.html"'})


@router.get("/api/runs/{run_id}", response_model=RunState, response_class=StrictJSONResponse,
            responses=NOT_FOUND)
def get_run(run_id: str, store: StoreDep, manager: ManagerDep) -> Response:
    """Status, and the whole run record {schema, config, environment, theory, steps},
    streamed from the store."""
    try:
        entry = store.get(run_id)
    except NotFound:
        job = manager.get(run_id)
        if job is None:
            raise HTTPException(404, f"no stored run {short(run_id)!r}") from None
        # started, not yet in the store (its thread is about to write it)
        return StrictJSONResponse({"id": run_id, "status": "running", "error": None,
                                   "steps_recorded": 0, "record": {
                                       "schema": SCHEMA, "config": job.config,
                                       "environment": None, "theory": None, "steps": []}})
    head = encode({key: entry[key] for key in ("id", "status", "error", "name", "note",
                                               "source", "created", "summary")}
                  | {"steps_recorded": entry["steps"]})
    chunks = store.export_chunks(run_id)

    def body():
        yield head[:-1] + b',"record":'
        yield from chunks
        yield b"}"

    return StreamingResponse(body(), media_type="application/json")


@router.get("/api/runs/{run_id}/export", response_model=RunRecord,
            response_class=StrictJSONResponse, responses=NOT_FOUND)
def export_run(run_id: str, store: StoreDep, manager: ManagerDep) -> StreamingResponse:
    """The run record as a JSON file download, streamed a few rows at a time (a run
    still going that is exported stays in the Runs list however it ends)."""
    manager.keep(run_id)
    try:
        chunks = store.export_chunks(run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {short(run_id)!r}") from None
    return StreamingResponse(chunks, media_type="application/json", headers={
        "content-disposition": f'attachment; filename="backproplab-{run_id}.json"'})


@router.get("/api/runs/{run_id}/report", response_class=HTMLResponse,
            responses={404: {"description": "no such run", "content": JSON_MESSAGE},
                       409: {"description": "no step yet", "content": JSON_MESSAGE}})
def report_run(run_id: str, store: StoreDep) -> HTMLResponse:
    """A self-contained interactive HTML report of a run (plotly.js embedded)."""
    if stored(store, run_id)["steps"] == 0:
        raise HTTPException(409, "the run has no recorded step yet")
    return HTMLResponse(report_html(store.record(run_id)), headers={
        "content-disposition": f'attachment; filename="backproplab-{run_id}.html"'})


@router.patch("/api/runs/{run_id}", response_model=RunSummary,
              response_class=StrictJSONResponse, responses=NOT_FOUND)
def edit_run(run_id: str, edit: RunEdit, store: StoreDep,
             manager: ManagerDep) -> StrictJSONResponse:
    """Rename a run or change its note (a named run is never pruned)."""
    manager.keep(run_id)
    stored(store, run_id)
    return StrictJSONResponse(store.rename(run_id, **edit.model_dump(exclude_unset=True)))


@router.delete("/api/runs/{run_id}", response_model=RunStatus,
               responses={**NOT_FOUND, 204: {"description": "deleted with its steps"}})
async def delete_run(run_id: str, store: StoreDep, manager: ManagerDep) -> Response:
    """A run still going is stopped (200: its status; its record so far is kept); a
    finished one is deleted with its steps (204)."""
    job = manager.get(run_id)
    if job is not None:
        await manager.stop(job)
        return StrictJSONResponse(RunStatus(
            id=job.id, status=STORED_STATUS.get(job.status, job.status),
            steps_recorded=job.steps_recorded, error=job.error).model_dump())
    try:
        await run_in_threadpool(store.delete, run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {run_id[:64]!r}") from None
    return Response(status_code=204)


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
async def import_run(request: Request, store: StoreDep,
                     keep: Annotated[bool, Query(alias="store",
                                                 description="false: validate only")] = True
                     ) -> Response:
    """Validate an uploaded run record (422 names the bad field), store it (source
    "imported", or "watched"; its id in the `x-run-id` header) and return it normalized:
    one JSON document, or the JSON lines backproplab.watch writes (even cut short by a
    killed script); a watched model's record comes back in its own schema. Parsed and
    validated off the event loop, large records in a separate process."""
    status, body, rows = await offload.off_loop(offload.import_rows, await request.body())
    if status != 200 or not keep:
        return Response(body, status_code=status, media_type="application/json")
    watched = (rows["head"].get("config") or {}).get("source") == "watched"
    run_id = await run_in_threadpool(store.put_prepared, rows,
                                     "watched" if watched else "imported")
    return Response(body, media_type="application/json",
                    headers={"x-run-id": run_id, "location": f"/api/runs/{run_id}"})
