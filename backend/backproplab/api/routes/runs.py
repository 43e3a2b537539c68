"""Runs: start headless ones; the stored history (list, get, export, report, rename,
delete); runs compared; import of a run record (stored too)."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from ...engines.runner import SCHEMA
from ...report import compare_report_html, report_html
from ...runs.codec import encode
from ...runs.compare import MAX_COMPARED, compare
from ...runs.manager import Refused
from ...runs.store import NotFound, RunStore
from ..records import validate_record
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
    """Start a headless run (429 when every job slot is busy)."""
    cfg = _validate(config, request)
    try:
        job = request.app.state.manager.start_headless(cfg.to_spec(), cfg.model_dump())
    except Refused as exc:
        raise HTTPException(429, str(exc)) from None
    return RunStatus(id=job.id, status=job.status, steps_recorded=0)


def get_store(request: Request) -> RunStore:
    return request.app.state.manager.store


Store = Annotated[RunStore, Depends(get_store)]
Source = Literal["live", "headless", "imported", "watched", "experiment"]


class RunSummary(BaseModel):
    """A stored run's index entry (what the history lists)."""

    id: str
    name: str | None
    note: str | None
    created: float = Field(description="seconds since the epoch")
    updated: float
    source: Source
    status: Literal["running", "done", "stopped", "interrupted", "error"]
    error: str | None
    steps: int
    bytes: int
    config_hash: str
    config: dict[str, Any]
    summary: dict[str, Any] = Field(description="final_loss, min_loss, first_nonfinite "
                                                "{step, layer}, delta_first, delta_last, ...")


class RunList(BaseModel):
    runs: list[RunSummary]
    total: int = Field(description="runs matching the filter, all pages")
    next: str | None = Field(description="`before` for the next (older) page")


class RunEdit(BaseModel):
    """A new name and/or note (null or "" clears; a named run is never pruned)."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=200)] | None = None
    note: Annotated[str, Field(max_length=4000)] | None = None


def _stored(store: RunStore, run_id: str) -> dict[str, Any]:
    try:
        return store.get(run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {run_id!r}") from None


def _ids(ids: str) -> list[str]:
    found = [i for i in (part.strip() for part in ids.split(",")) if i]
    if not 2 <= len(found) <= MAX_COMPARED:
        raise HTTPException(422, f"compare takes 2 to {MAX_COMPARED} run ids separated by "
                                 f"commas, got {len(found)}")
    return found


@router.get("/api/runs", response_model=RunList)
def list_runs(store: Store, source: Source | None = None,
              name: Annotated[str | None, Query(max_length=200,
                                                description="part of the name")] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              before: Annotated[str | None, Query(description="a run id: older runs")] = None,
              offset: Annotated[int, Query(ge=0)] = 0) -> StrictJSONResponse:
    """Stored runs, newest first (filter by source or name; paginated)."""
    try:
        runs = store.list(source=source, name=name, limit=limit, before=before, offset=offset)
    except NotFound:
        raise HTTPException(404, f"no stored run {before!r} to page from") from None
    total = store.count(source=source, name=name)
    return StrictJSONResponse({"runs": runs, "total": total,
                               "next": runs[-1]["id"] if len(runs) == limit else None})


@router.get("/api/runs/compare", response_class=StrictJSONResponse)
def compare_runs(store: Store, ids: Annotated[str, Query(description="ID,ID,...")],
                 points: Annotated[int, Query(ge=2, le=2000)] = 300) -> StrictJSONResponse:
    """Runs side by side: each run's last-step flow profile, loss and ‖δ‖ series, and
    every config field with each run's value (`differs` marks the ones that differ)."""
    try:
        return StrictJSONResponse(compare(store, _ids(ids), points))
    except NotFound as exc:
        raise HTTPException(404, f"no stored run {exc.args[0]!r}") from None


@router.get("/api/runs/compare/report", response_class=HTMLResponse)
def compare_report(store: Store, ids: Annotated[str, Query(description="ID,ID,...")]
                   ) -> HTMLResponse:
    """The comparison as one self-contained HTML file (plotly.js embedded)."""
    try:
        comparison = compare(store, _ids(ids))
    except NotFound as exc:
        raise HTTPException(404, f"no stored run {exc.args[0]!r}") from None
    return HTMLResponse(compare_report_html(comparison), headers={
        "content-disposition": 'attachment; filename="backproplab-compare.html"'})


@router.get("/api/runs/{run_id}", response_class=StrictJSONResponse)
def get_run(request: Request, store: Store, run_id: str) -> Response:
    """Status, and the whole run record {schema, config, environment, theory, steps}
    (streamed from the store)."""
    try:
        entry = store.get(run_id)
    except NotFound:
        job = request.app.state.manager.get(run_id)
        if job is None:
            raise HTTPException(404, f"no stored run {run_id!r}") from None
        # started, not yet in the store (its thread is about to write it)
        return StrictJSONResponse({"id": run_id, "status": "running", "error": None,
                                   "steps_recorded": 0, "record": {
                                       "schema": SCHEMA, "config": job.config,
                                       "environment": None, "theory": None, "steps": []}})
    head = encode({"id": entry["id"], "status": entry["status"], "error": entry["error"],
                   "steps_recorded": entry["steps"], "name": entry["name"],
                   "note": entry["note"], "source": entry["source"],
                   "created": entry["created"], "summary": entry["summary"]})
    chunks = store.export_chunks(run_id)

    def body():
        yield head[:-1] + b',"record":'
        yield from chunks
        yield b"}"

    return StreamingResponse(body(), media_type="application/json")


@router.get("/api/runs/{run_id}/export", response_class=StrictJSONResponse)
def export_run(store: Store, run_id: str) -> StreamingResponse:
    """The run record as a JSON file download, streamed row by row from the store."""
    try:
        chunks = store.export_chunks(run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {run_id!r}") from None
    return StreamingResponse(chunks, media_type="application/json", headers={
        "content-disposition": f'attachment; filename="backproplab-{run_id}.json"'})


@router.get("/api/runs/{run_id}/report", response_class=HTMLResponse)
def report_run(store: Store, run_id: str) -> HTMLResponse:
    """A self-contained interactive HTML report of a run (plotly.js embedded)."""
    if _stored(store, run_id)["steps"] == 0:
        raise HTTPException(409, "the run has no recorded step yet")
    return HTMLResponse(report_html(store.record(run_id)), headers={
        "content-disposition": f'attachment; filename="backproplab-{run_id}.html"'})


@router.patch("/api/runs/{run_id}", response_model=RunSummary)
def edit_run(store: Store, run_id: str, edit: RunEdit) -> StrictJSONResponse:
    """Rename a run or change its note."""
    _stored(store, run_id)
    changes = edit.model_dump(exclude_unset=True)
    return StrictJSONResponse(store.rename(run_id, **changes))


@router.delete("/api/runs/{run_id}", status_code=204)
def delete_run(request: Request, store: Store, run_id: str) -> Response:
    """Delete a stored run and its steps (409 while it runs: stop it first)."""
    entry = _stored(store, run_id)
    if entry["status"] == "running" and request.app.state.manager.get(run_id) is not None:
        raise HTTPException(409, f"run {run_id!r} is running; stop it first")
    try:
        store.delete(run_id)
    except NotFound:
        raise HTTPException(404, f"no stored run {run_id!r}") from None
    return Response(status_code=204)


@router.post("/api/report", response_class=HTMLResponse)
def report_record(record: dict = Body(...)) -> HTMLResponse:
    """The same report for an uploaded (e.g. imported) run record."""
    try:
        normalized = validate_record(record)
    except ValidationError as exc:
        raise as_422(exc) from None
    if not normalized["steps"]:
        raise HTTPException(422, "the record has no steps")
    return HTMLResponse(report_html(normalized), headers={
        "content-disposition": 'attachment; filename="backproplab-report.html"'})


@router.post("/api/runs/import", response_class=StrictJSONResponse)
def import_run(store: Store, record: dict = Body(...),
               keep: Annotated[bool, Query(alias="store",
                                           description="false: validate only")] = True
               ) -> StrictJSONResponse:
    """Validate an uploaded run record (422 names the bad field), store it (source
    "imported"; its id in the `x-run-id` header) and return it normalized."""
    try:
        normalized = validate_record(record)
    except ValidationError as exc:
        raise as_422(exc) from None
    if not keep:
        return StrictJSONResponse(normalized)
    run_id = store.put_record(normalized, "imported")
    return StrictJSONResponse(normalized, headers={"x-run-id": run_id,
                                                   "location": f"/api/runs/{run_id}"})
