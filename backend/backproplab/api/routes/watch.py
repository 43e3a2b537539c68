"""Watched runs: a training script's `backproplab.watch(..., server=...)` creates a run
and appends steps (with the server's secret in the X-Backproplab-Secret header); the
Watch page lists them and polls the one it follows for its new steps."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query
from pydantic import BaseModel, Field, ValidationError

from ...runs.watched import WatchedRun
from ..deps import SettingsDep, WatchedDep, WatchSecretDep, as_422
from ..responses import StrictJSONResponse
from ..watched_records import FirstNonfinite, WatchedConfig, WatchedStep, check_layers, dump_step

router = APIRouter(tags=["watch"])


def pusher(expected: WatchSecretDep,
           secret: Annotated[str | None, Header(alias="X-Backproplab-Secret")] = None) -> None:
    """Only a process that can read the user's secret file may push runs."""
    if not secret or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise HTTPException(403, "pushing a watched run needs the server's secret in the "
                                 "X-Backproplab-Secret header (backproplab.watch reads it "
                                 "from the file the server wrote at start)")


Pusher = Annotated[None, Depends(pusher)]


class Created(BaseModel):
    id: str


class Appended(BaseModel):
    id: str
    steps: int


class Head(BaseModel):
    schema_: str = Field(alias="schema", pattern=r"^backproplab\.run/\d+$")
    config: WatchedConfig
    environment: dict[str, Any] | None = None
    theory: None = None


class Steps(BaseModel):
    steps: list[WatchedStep] = Field(max_length=1000)


class End(BaseModel):
    first_nonfinite: FirstNonfinite | None = None
    steps_seen: int | None = None


def found(run: WatchedRun | None, run_id: str, settings: SettingsDep) -> WatchedRun:
    if run is None:
        raise HTTPException(404, f"no watched run {run_id!r} (the server keeps the newest "
                                 f"{settings.max_watched_runs})")
    return run


@router.post("/api/watch/runs", status_code=201, response_model=Created)
def create(watched: WatchedDep, _: Pusher, head: dict = Body(...)) -> Created:
    """Start a watched run from its record's head {schema, config, environment}."""
    try:
        parsed = Head.model_validate(head)
    except ValidationError as exc:
        raise as_422(exc) from None
    return Created(id=watched.create(parsed.model_dump(by_alias=True)).id)


@router.post("/api/watch/runs/{run_id}/steps", response_model=Appended)
def append(watched: WatchedDep, settings: SettingsDep, run_id: str, _: Pusher,
           body: dict = Body(...)) -> Appended:
    """Append recorded steps (validated; one layer per module of the run's config)."""
    run = found(watched.get(run_id), run_id, settings)
    try:
        steps = Steps.model_validate(body).steps
        check_layers(WatchedConfig.model_validate(run.head["config"]), steps)
    except ValidationError as exc:
        raise as_422(exc) from None
    run = watched.append(run_id, [dump_step(s) for s in steps])
    return Appended(id=run_id, steps=run.received)


@router.post("/api/watch/runs/{run_id}/end", response_model=Appended)
def end(watched: WatchedDep, settings: SettingsDep, run_id: str, _: Pusher,
        body: End) -> Appended:
    """The training script closed its watcher: the run is finished."""
    found(watched.get(run_id), run_id, settings)
    first = body.first_nonfinite.model_dump(by_alias=True) if body.first_nonfinite else None
    return Appended(id=run_id, steps=watched.end(run_id, first).received)


@router.get("/api/watch/runs", response_class=StrictJSONResponse)
def list_runs(watched: WatchedDep) -> StrictJSONResponse:
    """Watched runs, newest first, live and finished: name, status, steps, first non-finite."""
    return StrictJSONResponse({"runs": watched.list()})


@router.get("/api/watch/runs/{run_id}", response_class=StrictJSONResponse)
def follow(watched: WatchedDep, settings: SettingsDep, run_id: str,
           after: int = Query(-1, ge=-1),
           limit: int = Query(600, ge=1, le=10_000)) -> StrictJSONResponse:
    """The run's summary and config, and its steps after step `after` (the newest `limit`):
    the Watch page polls this with the last step it has."""
    newer = watched.since(run_id, after, limit)
    if newer is None:
        found(None, run_id, settings)
    return StrictJSONResponse(newer)


@router.get("/api/watch/runs/{run_id}/export", response_class=StrictJSONResponse)
def export(watched: WatchedDep, settings: SettingsDep, run_id: str) -> StrictJSONResponse:
    """The run record as the server holds it (history thinned beyond 10,000 steps)."""
    run = found(watched.get(run_id), run_id, settings)
    return StrictJSONResponse(run.record(), headers={
        "content-disposition": f'attachment; filename="backproplab-{run.id}.json"'})
