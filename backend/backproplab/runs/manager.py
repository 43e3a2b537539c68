"""The run manager: training jobs in worker threads (never on the event loop),
a global limit on concurrent jobs, cooperative cancellation, pause/step, and a
coalescing frame sink between a job and its (possibly slow) client. Every job writes
each recorded step to the run store as it is produced, from its own thread."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..engines import Cancelled, first_nonfinite, iter_steps, make_engine, theory_for
from ..engines.runner import environment
from ..model.spec import RunSpec
from ..settings import Settings
from .codec import encode
from .store import RunStore, new_run_id

_THEORY = ThreadPoolExecutor(max_workers=1, thread_name_prefix="theory")


def with_overflow_marker(record: dict[str, Any], diverged: bool) -> tuple[dict[str, Any], bool]:
    """The first step where δ or ∇W turns NaN/±Inf carries {"overflow": {step, layer}}
    (in the stream and in the store); returns the step and whether the run has diverged."""
    if diverged:
        return record, True
    bad = first_nonfinite(record)
    if bad is None:
        return record, False
    return {**record, "overflow": {"step": record["step"], "layer": bad}}, True


class StoreUnavailable(RuntimeError):
    """The run store cannot be opened (a folder not writable, a file not a database)."""


def store_for(settings: Settings) -> RunStore:
    """The store at BACKPROPLAB_DATA_DIR (":memory:" keeps nothing)."""
    try:
        return RunStore(settings.data_dir, max_bytes=settings.max_store_bytes,
                        sync=settings.store_sync)
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnavailable(f"cannot open the run store in {settings.data_dir}: {exc} "
                               f"(setting BACKPROPLAB_DATA_DIR; ':memory:' keeps "
                               f"nothing)") from None


class StepFrame(dict):
    """A step frame {"type": "step", "run": id, **record} that carries its strict JSON
    text, made from the bytes the store keeps, so the sender need not encode it again."""

    def __init__(self, run_id: str, record: dict[str, Any], body: bytes):
        super().__init__(type="step", run=run_id, **record)
        self.text = (b'{"type":"step","run":' + orjson.dumps(run_id) + b"," + body[1:]).decode()


# what the store calls a job's ending
STORED_STATUS = {"done": "done", "cancelled": "stopped", "error": "error"}


class Refused(Exception):
    """Over a limit: HTTP 429 / WebSocket close 1013."""


class JobSlots:
    """A global, non-blocking count of running jobs."""

    def __init__(self, limit: int):
        self.limit = limit
        self._used = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._used >= self.limit:
                return False
            self._used += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._used = max(0, self._used - 1)

    @property
    def in_use(self) -> int:
        return self._used


class FrameSink:
    """Between a job thread and an async sender. Ordinary frames coalesce (only the
    newest waits); the first frame, the frame where values turn non-finite and the
    final frames are kept in order. Bounded whatever the consumer's speed."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._lock = threading.Lock()
        self._kept: deque = deque()
        self._latest: Any = None
        self._loop = loop
        self.ready = asyncio.Event() if loop is not None else None

    def _wake(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.ready.set)

    def put(self, frame: Any, keep: bool = False) -> None:
        with self._lock:
            if keep:
                if self._latest is not None:  # order: what came before a kept frame goes first
                    self._kept.append(self._latest)
                    self._latest = None
                self._kept.append(frame)
            else:
                self._latest = frame
        self._wake()

    def take_kept(self) -> list:
        with self._lock:
            out = list(self._kept)
            self._kept.clear()
            return out

    def has_latest(self) -> bool:
        return self._latest is not None

    def take(self) -> list:
        with self._lock:
            out = list(self._kept)
            self._kept.clear()
            if self._latest is not None:
                out.append(self._latest)
                self._latest = None
            if self.ready is not None:
                self.ready.clear()
            return out


@dataclass
class Control:
    """Pause / resume / single step, checked by the job between steps."""

    paused: bool = False
    step_tokens: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def set_paused(self, paused: bool) -> None:
        with self.cond:
            self.paused = paused
            self.cond.notify_all()

    def add_step(self) -> None:
        with self.cond:
            self.paused = True
            self.step_tokens += 1
            self.cond.notify_all()

    def wait(self, cancel: threading.Event) -> bool:
        """Block while paused; True when this step was asked for explicitly."""
        with self.cond:
            while self.paused and self.step_tokens == 0 and not cancel.is_set():
                self.cond.wait(0.05)
            if cancel.is_set():
                raise Cancelled()
            if self.step_tokens:
                self.step_tokens -= 1
                return True
            return False


class Job:
    """One training run in its own thread, publishing frames to a sink and each
    recorded step to the store."""

    def __init__(self, spec: RunSpec, sink: FrameSink, slots: JobSlots, settings: Settings,
                 run_id: str, paused: bool = False, on_exit=None, store: RunStore | None = None,
                 source: str = "live"):
        self.on_exit = on_exit
        self.spec, self.sink, self.slots, self.settings = spec, sink, slots, settings
        self.store, self.source = store or RunStore(), source
        self.id = run_id
        self.cancel = threading.Event()
        self.control = Control(paused=paused)
        self.steps_recorded = 0
        self.status = "running"
        self.error: str | None = None
        self.theory: dict | None = None
        self.environment: dict | None = None
        self.config: dict | None = None
        self.thread = threading.Thread(target=self._main, name=f"job-{run_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _main(self) -> None:
        diverged = False
        started = time.monotonic()
        status, error, final = "running", None, None
        stored = False
        try:
            self.store.create(self.config or self.spec.to_dict(), self.source, run_id=self.id)
            stored = True
            engine = make_engine(self.spec, threads=self.settings.torch_threads)
            self.environment = environment(engine)
            self.store.update_meta(self.id, environment=self.environment)
            # the theory frame follows the first step, so a slider move shows data at once
            self.sink.put({"type": "run", "id": self.id, "theory": None,
                           "environment": self.environment}, keep=True)

            def before(step: int) -> bool:
                if time.monotonic() - started > self.settings.max_steps_seconds:
                    raise TimeoutError(f"run exceeded the wall-clock limit of "
                                       f"{self.settings.max_steps_seconds:g} s")
                return self.control.wait(self.cancel)

            first = True
            for record in iter_steps(self.spec, self.cancel, engine, before_step=before):
                record, now_diverged = with_overflow_marker(record, diverged)
                turned, diverged = now_diverged and not diverged, now_diverged
                body = encode(record)  # once, for the store and the stream
                self.store.append_encoded(self.id, [(record, body)])  # committed, then shown
                self.steps_recorded += 1
                self.sink.put(StepFrame(self.id, record, body), keep=first or turned)
                if first:
                    self._theory_future = _THEORY.submit(self._publish_theory)
                first = False
            future = getattr(self, "_theory_future", None)
            if future is not None and not future.cancelled():
                future.result()  # a finished record always carries its theory
            status = "done"
            final = {"type": "done", "id": self.id, "steps": self.steps_recorded}
        except Cancelled:
            status = "cancelled"
        except (ValueError, TimeoutError) as exc:
            status, error = "error", str(exc)
            final = {"type": "error", "code": "run_failed", "message": error, "field": None}
        except Exception as exc:  # never a traceback to the client; the type is enough
            status, error = "error", f"internal error ({type(exc).__name__})"
            final = {"type": "error", "code": "internal", "message": error, "field": None}
        finally:
            # the slot is free before anyone can see that the run ended: a client that
            # starts its next run on `done` (or on the finished status) is never refused
            self.slots.release()
            if self.on_exit is not None:
                self.on_exit(self)
            if stored:  # the store's status is the one GET /api/runs/{id} answers
                status, error, final = self._store_ending(status, error, final)
            self.status, self.error = status, error
            if final is not None:
                self.sink.put(final, keep=True)

    def _store_ending(self, status: str, error: str | None,
                      final: dict | None) -> tuple[str, str | None, dict | None]:
        """done / stopped / error in the store (a run stopped before its first step, a
        slider dragged past it, leaves nothing behind); a store that fails turns a done
        run into an error."""
        try:
            if status == "cancelled" and self.steps_recorded == 0:
                self.store.delete(self.id)
            else:
                self.store.finish(self.id, STORED_STATUS[status], error=error,
                                  environment=self.environment, theory=self.theory)
        except Exception as exc:  # a store that is closed (shutdown) or failing
            if status == "done":
                error = f"run store failed ({type(exc).__name__})"
                return "error", error, {"type": "error", "code": "internal",
                                        "message": error, "field": None}
        return status, error, final

    def _publish_theory(self) -> None:
        """Off the job thread, so a cancelled job exits at once (theory is pure NumPy)."""
        if self.cancel.is_set():
            return
        try:
            self.theory = theory_for(self.spec)
        except Exception as exc:  # a prediction that fails must not fail the run
            self.theory = {"applies": False,
                           "notes": [f"theory unavailable ({type(exc).__name__})"]}
        with contextlib.suppress(Exception):  # stored with the run as soon as it is known
            self.store.update_meta(self.id, theory=self.theory)
        if not self.cancel.is_set():
            self.sink.put({"type": "theory", "run": self.id, "theory": self.theory}, keep=True)

    def stop(self) -> None:
        self.cancel.set()
        future = getattr(self, "_theory_future", None)
        if future is not None:
            future.cancel()
        with self.control.cond:
            self.control.cond.notify_all()

    def record(self) -> dict[str, Any]:
        """The run record {schema, config, environment, theory, steps} so far."""
        return self.store.record(self.id)


class RunManager:
    """Owns the job slots, the running jobs and the run store (every record is there)."""

    def __init__(self, settings: Settings, store: RunStore | None = None):
        self.settings = settings
        self.slots = JobSlots(settings.max_jobs)
        self.store = store if store is not None else store_for(settings)
        self.jobs: dict[str, Job] = {}  # running, by id
        self.live: set[Job] = set()

    def new_id(self) -> str:
        return new_run_id()

    def _exited(self, job: Job) -> None:
        self.live.discard(job)
        self.jobs.pop(job.id, None)

    def start(self, spec: RunSpec, sink: FrameSink, config: dict, paused: bool = False,
              source: str = "live") -> Job:
        if not self.slots.try_acquire():
            raise Refused(f"all {self.slots.limit} job slots are busy; try again shortly "
                          f"(setting BACKPROPLAB_MAX_JOBS)")
        job = Job(spec, sink, self.slots, self.settings, self.new_id(), paused=paused,
                  on_exit=self._exited, store=self.store, source=source)
        job.config = config
        self.live.add(job)
        self.jobs[job.id] = job
        job.start()
        return job

    def start_headless(self, spec: RunSpec, config: dict) -> Job:
        return self.start(spec, FrameSink(None), config, source="headless")

    def get(self, run_id: str) -> Job | None:
        """The running job with this id (a finished run is in the store only)."""
        return self.jobs.get(run_id)

    async def stop(self, job: Job) -> None:
        """Cancel a job and wait for its thread to exit (its slot is free after)."""
        job.stop()
        await asyncio.to_thread(job.thread.join, 5.0)
        self.live.discard(job)

    def shutdown(self) -> None:
        """Stop every job, let each store its ending, then close the store."""
        jobs = list(self.live)
        for job in jobs:
            job.stop()
        for job in jobs:
            job.thread.join(2.0)
        self.store.close()
