"""Watched runs: a training script's `backproplab.watch(..., server=...)` creates a run
and appends steps (with the server's secret in the X-Backproplab-Secret header), each
batch committed to the run store before the answer; the Watch page lists them and
polls the one it follows for its new steps; the Runs page has them too."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ...runs.codec import encode
from ...runs.watched import Refused
from ...watch.secret import REFUSED
from ..deps import WatchedDep, WatchSecretDep, as_422
from ..offload import short
from ..records import MAX_INT, Count
from ..responses import StrictJSONResponse
from ..security import json_invalid
from ..watched_records import FirstNonfinite, WatchedConfig, WatchedStep, check_layers, dump_step

router = APIRouter(tags=["watch"])


def pusher(expected: WatchSecretDep,
           secret: Annotated[str | None, Header(alias="X-Backproplab-Secret")] = None) -> None:
    """Only a process that can read the user's secret file may push runs."""
    if not secret or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise HTTPException(403, REFUSED)


Pusher = Annotated[None, Depends(pusher)]


async def pushed(request: Request) -> Any:
    """The pushed JSON, read once the secret has been checked (route parameters resolve
    in order: the pusher comes first) and parsed strictly, as every other body is
    (bare NaN, Infinity, 1e400: a 422 that says where), in a thread: a thousand steps
    of a large model are megabytes, not to be parsed on the event loop."""
    raw = await request.body()
    try:
        return await run_in_threadpool(orjson.loads, raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(422, json_invalid(exc)) from None


Pushed = Annotated[Any, Depends(pushed)]


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
    steps_seen: Count | None = None


def found(run: dict | None, run_id: str) -> dict:
    if run is None:
        raise HTTPException(404, f"no watched run {short(run_id)!r} in the run store")
    return run


@router.post("/api/watch/runs", status_code=201, response_model=Created)
def create(watched: WatchedDep, _: Pusher, head: Pushed) -> Created:
    """Start a watched run from its record's head {schema, config, environment}."""
    try:
        parsed = Head.model_validate(head)
    except ValidationError as exc:
        raise as_422(exc) from None
    return Created(id=watched.create(parsed.model_dump(by_alias=True)))


@router.post("/api/watch/runs/{run_id}/steps", response_model=Appended)
def append(watched: WatchedDep, run_id: str, _: Pusher, body: Pushed) -> Appended:
    """Append recorded steps (validated; one layer per module of the run's config),
    stored before the answer; 409 once the run has finished or is over its bounds."""
    run = found(watched.get(run_id), run_id)
    try:
        steps = Steps.model_validate(body).steps
        check_layers(WatchedConfig.model_validate(run["config"]), steps)
    except ValidationError as exc:
        raise as_422(exc) from None
    try:
        count = watched.append(run_id, [dump_step(s) for s in steps])
    except Refused as exc:
        raise HTTPException(409, str(exc)) from None
    return Appended(id=run_id, steps=found(count, run_id))


@router.post("/api/watch/runs/{run_id}/end", response_model=Appended)
def end(watched: WatchedDep, run_id: str, _: Pusher, body: Pushed) -> Appended:
    """The training script closed its watcher: the run is finished."""
    try:
        closing = End.model_validate(body)
    except ValidationError as exc:
        raise as_422(exc) from None
    first = closing.first_nonfinite.model_dump(by_alias=True) if closing.first_nonfinite \
        else None
    return Appended(id=run_id, steps=found(watched.end(run_id, first), run_id))


@router.get("/api/watch/runs", response_class=StrictJSONResponse)
def list_runs(watched: WatchedDep) -> StrictJSONResponse:
    """Watched runs, newest first, live, finished and interrupted: name, status, steps,
    first non-finite."""
    return StrictJSONResponse({"runs": watched.list()})


@router.get("/api/watch/runs/{run_id}", response_class=StrictJSONResponse)
def follow(watched: WatchedDep, run_id: str, after: int = Query(-1, ge=-1, le=MAX_INT),
           limit: int = Query(600, ge=1, le=10_000)) -> StrictJSONResponse:
    """The run's summary and config, and its steps after step `after` (the newest `limit`):
    the Watch page polls this with the last step it has."""
    return StrictJSONResponse(found(watched.since(run_id, after, limit), run_id))


@router.get("/api/watch/runs/{run_id}/export")
def export(watched: WatchedDep, run_id: str) -> StreamingResponse:
    """The whole run record, streamed from the store, with its first non-finite value."""
    entry = found(watched.get(run_id), run_id)
    tail = b'],"first_nonfinite":' + encode(watched.first_nonfinite(entry)) + b"}"
    chunks = watched.store.export_chunks(run_id)

    def body():
        for piece in chunks:
            yield tail if piece == b"]}" else piece

    return StreamingResponse(body(), media_type="application/json", headers={
        "content-disposition": f'attachment; filename="backproplab-{run_id}.json"'})
