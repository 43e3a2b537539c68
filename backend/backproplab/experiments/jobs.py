"""Experiment jobs for a server: each runs in its own worker thread (never on the
event loop), reports progress as its tasks finish, can be cancelled, and its result
is kept in a cache by config hash (a repeated request is answered from it)."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ..engines import Cancelled
from .cache import MemoryCache, ResultCache
from .run import config_hash, run_experiment


class Busy(Exception):
    """Every experiment slot is taken."""


log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    name: str
    quick: bool
    seed: int
    key: str
    status: str = "queued"  # queued | running | done | error | cancelled
    done: int = 0
    total: int = 0
    current: str = ""
    error: str | None = None
    cached: bool = False
    result: dict[str, Any] | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    version: int = 0  # bumped on every change, for event streams

    def progress(self) -> dict[str, Any]:
        return {"id": self.id, "experiment": self.name, "quick": self.quick,
                "seed": self.seed, "config_hash": self.key, "status": self.status,
                "done": self.done, "total": self.total, "current": self.current,
                "error": self.error, "cached": self.cached,
                "elapsed_s": (self.finished or time.time()) - self.started}


class ExperimentJobs:
    """Starts, tracks and cancels experiment jobs; keeps the newest `keep` of them."""

    def __init__(self, workers: int = 0, ray_address: str | None = None,
                 cache: ResultCache | None = None, max_running: int = 1, keep: int = 32):
        self.workers, self.ray_address = workers, ray_address
        self.cache = cache or MemoryCache()
        self.max_running, self.keep = max_running, keep
        self.jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def start(self, name: str, quick: bool = True, seed: int = 0) -> Job:
        key = config_hash(name, quick, seed)  # raises ValueError for an unknown name
        with self._lock:
            job = Job(id=f"x{next(self._ids)}", name=name, quick=quick, seed=seed, key=key)
            cached = self.cache.get(key)
            if cached is not None:
                job.status, job.cached, job.result = "done", True, cached
                job.done = job.total = len(cached["runs"])
                job.finished = time.time()
            elif sum(j.status in ("queued", "running") for j in self.jobs.values()) \
                    >= self.max_running:
                raise Busy(f"{self.max_running} experiment(s) already running; "
                           "wait for it or cancel it")
            self.jobs[job.id] = job
            self._forget_old()
        if not job.cached:
            threading.Thread(target=self._run, args=(job,), daemon=True,
                             name=f"experiment-{job.id}").start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is not None and job.status in ("queued", "running"):
            job.cancel.set()
        return job

    def shutdown(self) -> None:
        for job in list(self.jobs.values()):
            job.cancel.set()

    def _run(self, job: Job) -> None:
        def on_progress(done: int, total: int, task: dict) -> None:
            job.done, job.total, job.current = done, total, task.get("label", "")
            job.version += 1

        job.status = "running"
        job.version += 1
        try:
            result = run_experiment(job.name, quick=job.quick, seed=job.seed,
                                    workers=self.workers, ray_address=self.ray_address,
                                    on_progress=on_progress, cancel=job.cancel)
        except Cancelled:
            job.status = "cancelled"
        except Exception as exc:  # shown to the user in words, the server goes on
            job.status, job.error = "error", f"{type(exc).__name__}: {exc}"
        else:
            job.result, job.status = result, "done"
            try:
                self.cache.put(job.key, result)
            except Exception as exc:  # a full disk: the result stands, uncached
                log.warning("experiment result %s not cached: %s: %s", job.key,
                            type(exc).__name__, exc)
        job.finished = time.time()
        job.version += 1

    def _forget_old(self) -> None:
        finished = [j for j in self.jobs.values() if j.status not in ("queued", "running")]
        for job in finished[:max(0, len(self.jobs) - self.keep)]:
            del self.jobs[job.id]
