"""Paper reproductions: list them, start one (a worker thread runs it), follow its
progress (poll or a server-sent event stream), cancel it, fetch its result and report."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field

from ...experiments import registry
from ...experiments.cache import DirectoryCache, MemoryCache
from ...experiments.jobs import Busy, ExperimentJobs, Job
from ...experiments.report import report_html
from ..responses import StrictJSONResponse


def jobs_for(app: FastAPI) -> ExperimentJobs:
    """The app's experiment jobs, made from its settings on first use."""
    jobs = getattr(app.state, "experiment_jobs", None)
    if jobs is None:
        s = app.state.settings
        cache = DirectoryCache(s.experiment_cache_dir) if s.experiment_cache_dir \
            else MemoryCache()
        jobs = app.state.experiment_jobs = ExperimentJobs(
            workers=s.experiment_workers, ray_address=s.ray_address or None, cache=cache,
            max_running=s.max_experiments)
    return jobs


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    jobs = getattr(app.state, "experiment_jobs", None)
    if jobs is not None:
        jobs.shutdown()  # cancel what is running


def _jobs(request: Request) -> ExperimentJobs:
    return jobs_for(request.app)


router = APIRouter(tags=["experiments"], lifespan=lifespan)
Jobs = Annotated[ExperimentJobs, Depends(_jobs)]


class ExperimentInfo(BaseModel):
    name: str
    title: str
    paper: str
    summary: str
    runs_quick: int
    runs_full: int


class StartExperiment(BaseModel):
    quick: bool = Field(True, description="the reduced size (under a minute on 2 cores)")
    seed: int = Field(0, ge=0, le=2**31 - 1)


class JobStatus(BaseModel):
    id: str
    experiment: str
    quick: bool
    seed: int
    config_hash: str
    status: str
    done: int
    total: int
    current: str
    error: str | None
    cached: bool
    elapsed_s: float


def _job(jobs: ExperimentJobs, job_id: str) -> Job:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(404, f"no experiment job {job_id!r}")
    return job


@router.get("/api/experiments", response_model=list[ExperimentInfo])
def list_experiments() -> list[ExperimentInfo]:
    """The built-in paper reproductions."""
    return [ExperimentInfo(name=e.name, title=e.title, paper=e.paper, summary=e.summary,
                           runs_quick=len(e.tasks(True, 0)), runs_full=len(e.tasks(False, 0)))
            for e in registry().values()]


@router.post("/api/experiments/{name}/jobs", status_code=202, response_model=JobStatus)
def start_experiment(name: str, jobs: Jobs, body: StartExperiment | None = None) -> JobStatus:
    """Start an experiment (done at once when cached; 429 while another one runs)."""
    body = body or StartExperiment()
    if name not in registry():
        raise HTTPException(404, f"unknown experiment {name!r}; one of: "
                                 f"{', '.join(registry())}")
    try:
        job = jobs.start(name, quick=body.quick, seed=body.seed)
    except Busy as exc:
        raise HTTPException(429, str(exc)) from None
    return JobStatus(**job.progress())


@router.get("/api/experiments/jobs/{job_id}", response_model=JobStatus)
def job_status(job_id: str, jobs: Jobs) -> JobStatus:
    """Status and progress (runs done of total, the one that finished last)."""
    return JobStatus(**_job(jobs, job_id).progress())


@router.delete("/api/experiments/jobs/{job_id}", response_model=JobStatus)
def cancel_job(job_id: str, jobs: Jobs) -> JobStatus:
    """Cancel a queued or running experiment."""
    _job(jobs, job_id)
    return JobStatus(**jobs.cancel(job_id).progress())


@router.get("/api/experiments/jobs/{job_id}/result", response_class=StrictJSONResponse)
def job_result(job_id: str, jobs: Jobs) -> StrictJSONResponse:
    """The result {experiment, config, runs, checks, figures, ...} (409 until done)."""
    job = _job(jobs, job_id)
    if job.result is None:
        raise HTTPException(409, f"experiment job {job_id} is {job.status}"
                                 + (f": {job.error}" if job.error else ""))
    return StrictJSONResponse(job.result)


@router.get("/api/experiments/jobs/{job_id}/report", response_class=HTMLResponse)
def job_report(job_id: str, jobs: Jobs) -> HTMLResponse:
    """A self-contained HTML report: checks against the paper, figures (plotly inlined)."""
    job = _job(jobs, job_id)
    if job.result is None:
        raise HTTPException(409, f"experiment job {job_id} is {job.status}")
    return HTMLResponse(report_html(job.result), headers={
        "content-disposition": f'attachment; filename="{job.name}-{job.key}.html"'})


async def _events(request: Request, job: Job) -> AsyncIterator[str]:
    seen = -1
    while True:
        if job.version != seen:
            seen = job.version
            state: dict[str, Any] = JobStatus(**job.progress()).model_dump()
            yield f"event: progress\ndata: {json.dumps(state)}\n\n"
            if job.status not in ("queued", "running"):
                yield f"event: end\ndata: {json.dumps(state)}\n\n"
                return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.1)


@router.get("/api/experiments/jobs/{job_id}/events")
def job_events(job_id: str, request: Request, jobs: Jobs) -> StreamingResponse:
    """Progress as server-sent events (`progress` on every change, `end` at the end)."""
    job = _job(jobs, job_id)
    return StreamingResponse(_events(request, job), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})
