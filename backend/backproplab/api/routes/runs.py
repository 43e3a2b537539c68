"""Runs: start headless ones; the stored history (list, get, export, report, rename,
delete); runs compared; import of a run record (stored too)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ...engines.runner import SCHEMA
from ...report import compare_report_html, report_html
from ...runs.codec import encode
from ...runs.compare import MAX_COMPARED, compare
from ...runs.jsonl import RecordFormatError, parse_record
from ...runs.manager import Refused
from ...runs.store import NotFound, RunStore
from ..deps import ConfigBody, ManagerDep, RecordBody, SettingsDep, StoreDep, as_422, run_config
from ..models import Comparison, Message, RunEdit, RunList, RunState, RunStatus, RunSummary, Source
from ..records import RunRecord, validate_record
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
        raise HTTPException(404, f"no stored run {run_id!r}") from None


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
        raise HTTPException(404, f"no stored run {exc.args[0]!r}") from None


@router.post("/api/runs", status_code=202, response_model=RunStatus,
             responses={429: {"model": Message, "description": "every job slot is busy"}})
def start_run(config: ConfigBody, manager: ManagerDep, settings: SettingsDep) -> RunStatus:
    """Start a headless run (429 when every job slot is busy); it is stored as it goes."""
    cfg = run_config(config, settings)
    try:
        job = manager.start_headless(cfg.to_spec(), cfg.model_dump())
    except Refused as exc:
        raise HTTPException(429, str(exc)) from None
    return RunStatus(id=job.id, status="running", steps_recorded=0)


@router.get("/api/runs", response_model=RunList, response_class=StrictJSONResponse,
            responses={404: {"model": Message, "description": "no run `before` names"}})
def list_runs(store: StoreDep, source: Source | None = None,
              name: Annotated[str | None, Query(max_length=200,
                                                description="a part of the name")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              before: Annotated[str | None, Query(description="a run id: the runs older "
                                                              "than it")] = None,
              offset: Annotated[int, Query(ge=0)] = 0) -> StrictJSONResponse:
    """Stored runs, newest first (filter by source or name; paginated)."""
    try:
        runs = store.list(source=source, name=name, limit=limit, before=before, offset=offset)
    except NotFound:
        raise HTTPException(404, f"no stored run {before!r} to page from") from None
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
            raise HTTPException(404, f"no stored run {run_id!r}") from None
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
def export_run(run_id: str, store: StoreDep) -> StreamingResponse:
    """The run record as a JSON file download, streamed a few rows at a time."""
    try:
        chunks = store.export_chunks(run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {run_id!r}") from None
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
def edit_run(run_id: str, edit: RunEdit, store: StoreDep) -> StrictJSONResponse:
    """Rename a run or change its note (a named run is never pruned)."""
    stored(store, run_id)
    return StrictJSONResponse(store.rename(run_id, **edit.model_dump(exclude_unset=True)))


@router.delete("/api/runs/{run_id}", status_code=204,
               responses={**NOT_FOUND, 409: {"model": Message, "description": "running"}})
def delete_run(run_id: str, store: StoreDep, manager: ManagerDep) -> Response:
    """Delete a stored run and its steps (409 while it runs: stop it first)."""
    if stored(store, run_id)["status"] == "running" and manager.get(run_id) is not None:
        raise HTTPException(409, f"run {run_id!r} is running; stop it first")
    try:
        store.delete(run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {run_id!r}") from None
    return Response(status_code=204)


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


def import_body(body: bytes, store: RunStore, keep: bool) -> StrictJSONResponse:
    """One JSON document or JSON lines, validated and normalized (a 422 in words), and
    stored unless `keep` is false (a watched model's record with source "watched")."""
    try:
        normalized = validate_record(parse_record(body))
    except RecordFormatError as exc:
        raise HTTPException(422, str(exc)) from None
    except ValidationError as exc:
        raise as_422(exc) from None
    if not keep:
        return StrictJSONResponse(normalized)
    watched = (normalized.get("config") or {}).get("source") == "watched"
    run_id = store.put_record(normalized, "watched" if watched else "imported")
    return StrictJSONResponse(normalized, headers={"x-run-id": run_id,
                                                   "location": f"/api/runs/{run_id}"})


@router.post("/api/runs/import", response_model=RunRecord, response_class=StrictJSONResponse,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"$ref": "#/components/schemas/RunRecord"}}}}})
async def import_run(request: Request, store: StoreDep,
                     keep: Annotated[bool, Query(alias="store",
                                                 description="false: validate only")] = True
                     ) -> StrictJSONResponse:
    """Validate an uploaded run record (422 names the bad field), store it (source
    "imported", or "watched"; its id in the `x-run-id` header) and return it normalized:
    one JSON document, or the JSON lines backproplab.watch writes (even cut short by a
    killed script); a watched model's record comes back in its own schema."""
    return await run_in_threadpool(import_body, await request.body(), store, keep)
