"""The run manager: training jobs in worker threads (never on the event loop),
a global limit on concurrent jobs, cooperative cancellation, pause/step, and a
coalescing frame sink between a job and its (possibly slow) client."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..engines import Cancelled, first_nonfinite, iter_steps, make_engine, theory_for
from ..engines.runner import SCHEMA, environment
from ..model.spec import RunSpec
from ..settings import Settings

_ids = itertools.count(1)
_THEORY = ThreadPoolExecutor(max_workers=1, thread_name_prefix="theory")


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
    """One training run in its own thread, publishing frames to a sink."""

    def __init__(self, spec: RunSpec, sink: FrameSink, slots: JobSlots, settings: Settings,
                 run_id: str, paused: bool = False, on_exit=None):
        self.on_exit = on_exit
        self.spec, self.sink, self.slots, self.settings = spec, sink, slots, settings
        self.id = run_id
        self.cancel = threading.Event()
        self.control = Control(paused=paused)
        self.steps: list[dict] = []
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
        try:
            engine = make_engine(self.spec, threads=self.settings.torch_threads)
            self.environment = environment(engine)
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
                self.steps.append(record)
                bad = first_nonfinite(record)
                turned = bad is not None and not diverged
                if turned:
                    diverged = True
                    record = {**record, "overflow": {"step": record["step"], "layer": bad}}
                self.sink.put({"type": "step", "run": self.id, **record}, keep=first or turned)
                if first:
                    self._theory_future = _THEORY.submit(self._publish_theory)
                first = False
            future = getattr(self, "_theory_future", None)
            if future is not None and not future.cancelled():
                future.result()  # a finished record always carries its theory
            status = "done"
            final = {"type": "done", "id": self.id, "steps": len(self.steps)}
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
            self.status, self.error = status, error
            if final is not None:
                self.sink.put(final, keep=True)

    def _publish_theory(self) -> None:
        """Off the job thread, so a cancelled job exits at once (theory is pure NumPy)."""
        if self.cancel.is_set():
            return
        try:
            self.theory = theory_for(self.spec)
        except Exception as exc:  # a prediction that fails must not fail the run
            self.theory = {"applies": False,
                           "notes": [f"theory unavailable ({type(exc).__name__})"]}
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
        return {"schema": SCHEMA, "config": self.config, "environment": self.environment,
                "theory": self.theory, "steps": self.steps}


class RunManager:
    """Owns the job slots, the headless runs and their records (bounded)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.slots = JobSlots(settings.max_jobs)
        self.runs: OrderedDict[str, Job] = OrderedDict()
        self.live: set[Job] = set()

    def new_id(self) -> str:
        return f"r{next(_ids)}-{int(time.time() * 1000) % 10**8}"

    def start(self, spec: RunSpec, sink: FrameSink, config: dict, paused: bool = False) -> Job:
        if not self.slots.try_acquire():
            raise Refused(f"all {self.slots.limit} job slots are busy; try again shortly "
                          f"(setting BACKPROPLAB_MAX_JOBS)")
        job = Job(spec, sink, self.slots, self.settings, self.new_id(), paused=paused,
                  on_exit=self.live.discard)
        job.config = config
        self.live.add(job)
        # every run stays exportable by id; the oldest finished ones are dropped first
        self.runs[job.id] = job
        finished = [rid for rid, j in self.runs.items() if not j.thread.is_alive()]
        while len(self.runs) > self.settings.max_stored_runs and finished:
            self.runs.pop(finished.pop(0))
        job.start()
        return job

    def start_headless(self, spec: RunSpec, config: dict) -> Job:
        return self.start(spec, FrameSink(None), config)

    def get(self, run_id: str) -> Job | None:
        return self.runs.get(run_id)

    async def stop(self, job: Job) -> None:
        """Cancel a job and wait for its thread to exit (its slot is free after)."""
        job.stop()
        await asyncio.to_thread(job.thread.join, 5.0)
        self.live.discard(job)

    def shutdown(self) -> None:
        for job in list(self.live) + list(self.runs.values()):
            job.stop()
        for job in list(self.live):
            job.thread.join(2.0)
