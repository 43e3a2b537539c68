"""What routes depend on, as typed aliases (`SettingsDep`, `ManagerDep`, `StoreDep`,
`ExperimentJobsDep`), and the one way a request's run config is validated (the
server's compute budget, a 422 that names the field). The only module that reads
`app.state`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError, WithJsonSchema
from starlette.requests import HTTPConnection

from ..experiments.cache import DirectoryCache, MemoryCache
from ..experiments.jobs import ExperimentJobs
from ..runs.manager import RunManager
from ..runs.store import MEMORY, RunStore
from ..runs.watched import WatchedRuns
from ..settings import Settings
from .measuring import Measurement
from .schemas import RunConfig, validate_config


def get_settings(conn: HTTPConnection) -> Settings:
    """The server's settings (HTTP and WebSocket routes alike)."""
    return conn.app.state.settings


def get_manager(conn: HTTPConnection) -> RunManager:
    """The server's one run manager: admission, scheduling, stored runs."""
    return conn.app.state.manager


def get_watched(conn: HTTPConnection) -> WatchedRuns:
    """The server's registry of watched runs (pushed by backproplab.watch)."""
    return conn.app.state.watched


def get_watch_secret(conn: HTTPConnection) -> str:
    """The secret a training script pushes watched runs with."""
    return conn.app.state.watch_secret


def get_measurements(conn: HTTPConnection) -> dict[str, Measurement]:
    """The server's seconds-long measurements by name ("compile", "memory")."""
    return conn.app.state.measurements


SettingsDep = Annotated[Settings, Depends(get_settings)]
MeasurementsDep = Annotated[dict[str, Measurement], Depends(get_measurements)]
ManagerDep = Annotated[RunManager, Depends(get_manager)]
WatchedDep = Annotated[WatchedRuns, Depends(get_watched)]
WatchSecretDep = Annotated[str, Depends(get_watch_secret)]


def get_store(manager: ManagerDep) -> RunStore:
    """The run store: every run, live, headless and imported."""
    return manager.store


StoreDep = Annotated[RunStore, Depends(get_store)]

# Request bodies taken as plain JSON objects and validated by the route itself (under
# the server's compute budget; a 422 with the field's path), documented as the models
ConfigBody = Annotated[dict[str, Any], WithJsonSchema({"$ref": "#/components/schemas/RunConfig"})]
RecordBody = Annotated[dict[str, Any], WithJsonSchema({"$ref": "#/components/schemas/RunRecord"})]


def as_422(exc: ValidationError, loc: str = "body") -> RequestValidationError:
    """A pydantic error as FastAPI's 422, each path prefixed with where it came from."""
    return RequestValidationError(
        [{**e, "loc": (loc, *e["loc"])} for e in exc.errors(include_input=False)])


def run_config(data: Any, settings: Settings, loc: str = "body",
               trains: bool = True) -> RunConfig:
    """A validated RunConfig under this server's compute budget (trains=False: for an
    answer that trains nothing, e.g. the mean-field theory: no budget), or a 422."""
    try:
        return validate_config(data, settings.compute_budget if trains else math.inf)
    except ValidationError as exc:
        raise as_422(exc, loc) from None


def experiment_cache_dir(s: Settings) -> str | None:
    """Where finished experiment results are kept: the setting, else beside the run
    store (a restart answers a repeated request at once); None: in memory only."""
    if s.experiment_cache_dir:
        return None if s.experiment_cache_dir == MEMORY else s.experiment_cache_dir
    return None if s.data_dir == MEMORY else str(Path(s.data_dir).expanduser() / "experiments")


def experiment_jobs(app: Any) -> ExperimentJobs:
    """The app's experiment jobs, made from its settings on first use."""
    jobs = getattr(app.state, "experiment_jobs", None)
    if jobs is None:
        s: Settings = app.state.settings
        where = experiment_cache_dir(s)
        cache = DirectoryCache(where) if where else MemoryCache()
        jobs = app.state.experiment_jobs = ExperimentJobs(
            workers=s.experiment_workers, ray_address=s.ray_address or None, cache=cache,
            max_running=s.max_experiments)
    return jobs


def shutdown_experiments(app: Any) -> None:
    """Cancel the app's running experiments (on shutdown), if it ever made any."""
    jobs = getattr(app.state, "experiment_jobs", None)
    if jobs is not None:
        jobs.shutdown()


def get_experiment_jobs(conn: HTTPConnection) -> ExperimentJobs:
    """The server's experiment jobs (paper reproductions in worker threads)."""
    return experiment_jobs(conn.app)


ExperimentJobsDep = Annotated[ExperimentJobs, Depends(get_experiment_jobs)]
