"""Paper reproductions: list them, start one (a worker thread runs it), follow its
progress (poll or a server-sent event stream), cancel it, fetch its result and report."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from ...experiments import registry
from ...experiments.jobs import Busy, Job
from ...experiments.report import report_html
from ..deps import ExperimentJobsDep, shutdown_experiments
from ..models import Message
from ..offload import short
from ..responses import StrictJSONResponse
from ..schemas import not_a_boolean


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    shutdown_experiments(app)  # cancel what is running


router = APIRouter(tags=["experiments"], lifespan=lifespan)
NOT_FOUND = {404: {"model": Message, "description": "no such experiment job"}}
JSON_MESSAGE = {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}


class ExperimentInfo(BaseModel):
    name: str
    title: str
    paper: str
    summary: str
    runs_quick: int
    runs_full: int


class StartExperiment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quick: StrictBool = Field(True, description="the reduced size (under a minute on 2 cores)")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    _numbers = field_validator("*", mode="before")(not_a_boolean)


class JobStatus(BaseModel):
    id: str
    experiment: str
    quick: bool
    seed: int
    config_hash: str
    status: str = Field(description="queued, running, done, error or cancelled")
    done: int = Field(description="runs finished")
    total: int = Field(description="runs in the experiment")
    current: str = Field(description="the run that finished last")
    error: str | None
    cached: bool = Field(description="answered from the result cache")
    elapsed_s: float


class Check(BaseModel):
    name: str
    published: float
    measured: float | str = Field(description='a number, or "NaN" / "Infinity"')
    tolerance: float
    relation: str = Field(description="≈: |measured − published| ≤ tolerance; <: measured ≤ "
                                      "published − tolerance; >: ≥ published + tolerance")
    passed: bool = Field(alias="pass")
    source: str = Field(description="where the published value comes from, quoted")


class ExperimentResult(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    schema_: str = Field(alias="schema")
    experiment: str
    title: str
    paper: str
    config: dict[str, Any]
    config_hash: str
    runs: list[dict[str, Any]] = Field(description="{kind, label, params, result} per run")
    checks: list[Check]
    passed: bool
    figures: list[dict[str, Any]] = Field(description="Plotly figures {data, layout}")
    execution: dict[str, Any]


def get_job(job_id: str, jobs: ExperimentJobsDep) -> Job:
    """The experiment job of the path's `job_id`, or a 404."""
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no experiment job {short(repr(job_id))}")
    return job


JobDep = Annotated[Job, Depends(get_job)]


def finished(job: Job) -> dict[str, Any]:
    """The job's result, or a 409 that says how it stands."""
    if job.result is None:
        raise HTTPException(409, f"experiment job {job.id} is {job.status}"
                                 + (f": {job.error}" if job.error else ""))
    return job.result


@router.get("/api/experiments", response_model=list[ExperimentInfo])
def list_experiments() -> list[ExperimentInfo]:
    """The built-in paper reproductions."""
    return [ExperimentInfo(name=e.name, title=e.title, paper=e.paper, summary=e.summary,
                           runs_quick=len(e.tasks(True, 0)), runs_full=len(e.tasks(False, 0)))
            for e in registry().values()]


@router.post("/api/experiments/{name}/jobs", status_code=202, response_model=JobStatus,
             responses={404: {"model": Message, "description": "no such experiment"},
                        429: {"model": Message, "description": "one is running already"}})
def start_experiment(name: str, jobs: ExperimentJobsDep,
                     body: StartExperiment | None = None) -> JobStatus:
    """Start an experiment (done at once when cached; 429 while another one runs)."""
    body = body or StartExperiment()
    if name not in registry():
        raise HTTPException(404, f"unknown experiment {short(repr(name))}; one of: "
                                 f"{', '.join(registry())}")
    try:
        job = jobs.start(name, quick=body.quick, seed=body.seed)
    except Busy as exc:
        raise HTTPException(429, str(exc)) from None
    return JobStatus(**job.progress())


@router.get("/api/experiments/jobs/{job_id}", response_model=JobStatus, responses=NOT_FOUND)
def job_status(job: JobDep) -> JobStatus:
    """Status and progress (runs done of total, the one that finished last)."""
    return JobStatus(**job.progress())


@router.delete("/api/experiments/jobs/{job_id}", response_model=JobStatus,
               responses=NOT_FOUND)
def cancel_job(job: JobDep, jobs: ExperimentJobsDep) -> JobStatus:
    """Cancel a queued or running experiment."""
    jobs.cancel(job.id)
    return JobStatus(**job.progress())


@router.get("/api/experiments/jobs/{job_id}/result", response_model=ExperimentResult,
            response_class=StrictJSONResponse,
            responses={**NOT_FOUND, 409: {"model": Message, "description": "not done"}})
def job_result(job: JobDep) -> StrictJSONResponse:
    """The result {experiment, config, runs, checks, figures, ...} (409 until done)."""
    return StrictJSONResponse(finished(job))


@router.get("/api/experiments/jobs/{job_id}/report", response_class=HTMLResponse,
            responses={404: {"description": "no such job", "content": JSON_MESSAGE},
                       409: {"description": "not done", "content": JSON_MESSAGE}})
def job_report(job: JobDep) -> HTMLResponse:
    """A self-contained HTML report: checks against the paper, figures (plotly inlined)."""
    result = finished(job)
    return HTMLResponse(report_html(result), headers={
        "content-disposition": f'attachment; filename="{job.name}-{job.key}.html"'})


async def progress_events(request: Request, job: Job) -> AsyncIterator[str]:
    """`progress` on every change of the job, then `end`; stops when the client leaves."""
    seen = -1
    while True:
        if job.version != seen:
            seen = job.version
            state = JobStatus(**job.progress()).model_dump()
            yield f"event: progress\ndata: {json.dumps(state)}\n\n"
            if job.status not in ("queued", "running"):
                yield f"event: end\ndata: {json.dumps(state)}\n\n"
                return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.1)


@router.get("/api/experiments/jobs/{job_id}/events", responses={
    200: {"description": "text/event-stream of JobStatus objects",
          "content": {"text/event-stream": {}}}, **NOT_FOUND})
def job_events(job: JobDep, request: Request) -> StreamingResponse:
    """Progress as server-sent events (`progress` on every change, `end` at the end)."""
    return StreamingResponse(progress_events(request, job), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})
