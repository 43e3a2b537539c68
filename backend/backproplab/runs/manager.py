"""The run manager: admission, fair-share scheduling, cancellation, run records.

Admission: a run is refused outright when its estimated peak memory (runs.budget)
is over the per-run limit, and asked to retry later when the server already holds
its limit of sessions or the sum of the admitted estimates would pass the
server-wide bound. Admitted runs are never refused for lack of cores: a few worker
threads take turns running them a step at a time (the scheduler below), so many
small runs and a few heavy ones share the machine. Jobs never run on the event loop.

Records: every job writes each recorded step to the run store (runs.store) as it is
produced, from the worker that ran the step, before the step is shown. What the Runs
list keeps: a run that finished, or that was stopped, paused, exported or named; a live
run replaced before it finished (a new setting, a slider drag, a reload) and never kept
that way is dropped with its steps, so the list holds the runs somebody meant.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from ..engines import Cancelled, first_nonfinite, iter_steps, make_engine, theory_for
from ..engines.runner import environment
from ..model.init import InitStopped, stoppable
from ..model.spec import RunSpec
from ..settings import Settings
from .budget import Cost, OverBudget, human, run_cost, step_flops
from .codec import encode
from .scheduler import Scheduler
from .store import RunStore, new_run_id

_THEORY = ThreadPoolExecutor(max_workers=1, thread_name_prefix="theory")
MAX_KEPT_FRAMES = 256  # kept frames waiting for a client that does not read
THEORY_DELAY = 0.15  # s after the first frame: a run replaced at once (a drag) costs none
FLOPS_PER_SECOND = 5e9  # one core, for a new run's expected step time
RETRY_SECONDS = 5


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


# how long `stop` waits for a job to end (a step ends within a layer; building a large
# network is not cut short)
STOP_WAIT_S = 5.0

# what the store calls a job's ending
STORED_STATUS = {"done": "done", "cancelled": "stopped", "error": "error"}


class Refused(Exception):
    """Over a server-wide limit: HTTP 429 / WebSocket close 1013, retry later."""

    def __init__(self, message: str, retry_after: float = RETRY_SECONDS):
        super().__init__(message)
        self.retry_after = retry_after


class Ledger:
    """Admitted work: a count of sessions and the sum of their estimated bytes."""

    def __init__(self, max_sessions: int, max_total_bytes: int, max_run_bytes: int):
        self.max_sessions, self.max_total, self.max_run = \
            max_sessions, max_total_bytes, max_run_bytes
        self.sessions = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def admit(self, cost: Cost, session: bool = True) -> None:
        if cost.bytes > self.max_run:
            raise OverBudget(cost, self.max_run, "BACKPROPLAB_MAX_RUN_BYTES",
                             hint=_shrink_hint(cost))
        with self._lock:
            if session and self.sessions >= self.max_sessions:
                runs = "1 run" if self.sessions == 1 else f"{self.sessions} runs"
                raise Refused(f"the server is running {runs}, its limit "
                              f"(setting BACKPROPLAB_MAX_SESSIONS); retrying in "
                              f"{RETRY_SECONDS} s")
            if self.bytes + cost.bytes > self.max_total:
                raise Refused(f"the server's memory for runs is taken: {human(self.bytes)} of "
                              f"{human(self.max_total)} admitted, this {cost.what} needs "
                              f"{human(cost.bytes)} (setting BACKPROPLAB_MAX_TOTAL_BYTES); "
                              f"retrying in {RETRY_SECONDS} s")
            self.sessions += session
            self.bytes += cost.bytes

    def release(self, cost: Cost, session: bool = True) -> None:
        with self._lock:
            self.sessions = max(0, self.sessions - session)
            self.bytes = max(0, self.bytes - cost.bytes)

    @contextlib.contextmanager
    def reserve(self, cost: Cost):
        """For work done within one request (phase diagrams): bytes, not a session."""
        self.admit(cost, session=False)
        try:
            yield
        finally:
            self.release(cost, session=False)


def _shrink_hint(cost: Cost) -> str:
    if cost.parts.get("recorded step", 0) > cost.bytes / 2:
        return "; record fewer layers' samples (record.hist_bins, record.delta_samples)"
    return "; use a smaller depth, width or batch"


class FrameSink:
    """Between a job thread and an async sender. Ordinary frames coalesce (only the
    newest waits); the first frame, the frame where values turn non-finite and the
    final frames are kept in order. Bounded whatever the consumer's speed: past
    MAX_KEPT_FRAMES kept frames the sink is marked `overflowed` (the client is
    dropped). A frame is a dict (a StepFrame carries its encoded JSON text)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self._lock = threading.Lock()
        self._kept: deque = deque()
        self._latest: Any = None
        self.overflowed = False
        self._loop = loop
        self.ready = asyncio.Event() if loop is not None else None

    def _wake(self) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self.ready.set)

    def put(self, frame: Any, keep: bool = False) -> None:
        if self._loop is None:
            return  # a headless run: nobody reads frames
        with self._lock:
            if keep:
                if self._latest is not None:  # order: what came before a kept frame goes first
                    self._kept.append(self._latest)
                    self._latest = None
                self._kept.append(frame)
                if len(self._kept) > MAX_KEPT_FRAMES:
                    self.overflowed = True
                    self._kept.popleft()
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

    def drop_run(self, run_id: str) -> None:
        """Drop the frames of a run that was replaced and not yet sent (its steps, its
        run, theory, done and error frames); the answers to the client's own messages
        (pong, stopped, errors of a message) stay, in order."""
        def of_run(frame: Any) -> bool:
            return frame.get("run", frame.get("id")) == run_id and frame.get("type") in \
                ("step", "run", "theory", "done", "error")

        with self._lock:
            self._kept = deque(f for f in self._kept if not of_run(f))
            if self._latest is not None and of_run(self._latest):
                self._latest = None

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


class Control:
    """Pause / resume / single step; the scheduler skips a paused job."""

    def __init__(self, paused: bool = False):
        self.paused = paused
        self.step_tokens = 0
        self._lock = threading.Lock()
        self.on_change = None  # the scheduler's wake-up for this job

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self.paused = paused
        self._changed()

    def add_step(self) -> None:
        with self._lock:
            self.paused = True
            self.step_tokens += 1
        self._changed()

    def runnable(self) -> bool:
        return not self.paused or self.step_tokens > 0

    def take_token(self) -> bool:
        """True when this step was asked for explicitly (it is recorded)."""
        with self._lock:
            if self.step_tokens:
                self.step_tokens -= 1
                return True
            return False


class Deadline(threading.Event):
    """A cancel event that also reads as set once the run's compute time is spent,
    so the limit is checked wherever cancellation is (every layer, every Jacobian
    product), not only between steps."""

    def __init__(self):
        super().__init__()
        self.at = float("inf")

    def is_set(self) -> bool:
        return super().is_set() or time.monotonic() > self.at

    def timed_out(self) -> bool:
        return not super().is_set() and time.monotonic() > self.at


_NOBODY = FrameSink(None)


class Job:
    """One run, advanced a step at a time by the scheduler's workers. Its recorded
    steps go to the run store as they are produced (nothing of them is kept here)."""

    def __init__(self, spec: RunSpec, sink: FrameSink, settings: Settings, run_id: str,
                 cost: Cost, paused: bool = False, on_exit=None, store: RunStore | None = None,
                 source: str = "live"):
        self.spec, self.sink, self.settings, self.id, self.cost = \
            spec, sink, settings, run_id, cost
        self.store = store if store is not None else RunStore()
        self.source = source
        self._stored = False  # the run's row exists
        self.superseded = False  # replaced by the session's next run (or the session ended)
        self.keep = False  # paused, stopped, exported or named: stored whatever ends it
        self.on_exit = on_exit
        self.cancel = Deadline()
        self.control = Control(paused=paused)
        self.status = "running"
        self.error: str | None = None
        self.theory: dict | None = None
        self.environment: dict | None = None
        self.config: dict | None = None
        self.finished = threading.Event()
        self.stopped_at = self.ended_at = None  # perf_counter times of stop() and the end
        self.used_seconds = 0.0  # compute time of its own steps
        self.steps_recorded = 0
        self.record_bytes = 0  # what its stored steps take
        self._engine = None
        self._steps_iter = None
        self._first = True
        self._diverged = False
        self._theory_future = None
        self._exit_lock = threading.Lock()
        self._ended = False
        # scheduler state
        self.vtime = 0.0
        self.step_seconds: float | None = None  # moving average of a turn's duration
        self.predicted_seconds = step_flops(spec) / FLOPS_PER_SECOND
        self.running = False

    # --- what the scheduler calls --------------------------------------------------
    def runnable(self) -> bool:
        return self.control.runnable() or self.cancel.is_set()

    def advance(self) -> bool:
        """Run one step (the first turn also builds the engine); False when the job
        has ended (done, cancelled, failed)."""
        if self._ended:
            return False
        self.cancel.at = time.monotonic() + self.settings.max_steps_seconds - self.used_seconds
        started = time.perf_counter()
        try:
            if self.cancel.is_set():
                raise Cancelled()
            if self._steps_iter is None:
                self._begin()
            if not self.control.runnable():
                return True  # started paused: built, and parked before step 0
            record = next(self._steps_iter)
            if record is not None:
                self._publish(record)
            return True
        except StopIteration:
            self._complete()
            return False
        except (Cancelled, InitStopped):
            if self.cancel.timed_out():
                self._fail(f"run exceeded its compute-time limit of "
                           f"{self.settings.max_steps_seconds:g} s "
                           f"(setting BACKPROPLAB_MAX_STEPS_SECONDS)", code="run_failed")
            else:
                self._exit("cancelled")
            return False
        except (ValueError, TimeoutError) as exc:
            self._fail(str(exc), code="run_failed")
            return False
        except Exception as exc:  # never a traceback to the client; the type is enough
            self._fail(f"internal error ({type(exc).__name__})", code="internal")
            return False
        finally:
            self.used_seconds += time.perf_counter() - started

    def _begin(self) -> None:
        self.store.create(self.config or self.spec.to_dict(), self.source, run_id=self.id)
        self._stored = True
        with stoppable(self.cancel.is_set):  # a large network: stopped between layers
            self._engine = make_engine(self.spec, threads=self.settings.torch_threads)
        self.environment = environment(self._engine)
        self.store.update_meta(self.id, environment=self.environment)
        # the theory frame follows the first step, so a slider move shows data at once
        self.sink.put({"type": "run", "id": self.id, "theory": None,
                       "environment": self.environment}, keep=True)
        self._steps_iter = iter_steps(self.spec, self.cancel, self._engine,
                                      before_step=lambda step: self.control.take_token(),
                                      every_step=True)

    def _publish(self, record: dict) -> None:
        record, diverged = with_overflow_marker(record, self._diverged)
        turned, self._diverged = diverged and not self._diverged, diverged
        data = encode(record)  # once: stored, and the frame is built from the same bytes
        self.store.append_encoded(self.id, [(record, data)])  # committed, then shown
        self.steps_recorded += 1
        self.record_bytes += len(data)
        self.sink.put(StepFrame(self.id, record, data), keep=self._first or turned)
        if self._first:  # off the workers: a prediction never delays anyone's steps
            self._theory_future = _THEORY.submit(self._publish_theory)
        self._first = False

    def _complete(self) -> None:
        """A finished record always carries its theory: if the prediction is still
        being computed, the run ends when it is there (no worker waits for it)."""
        future = self._theory_future
        if future is None or future.done():
            self._done()
        else:
            future.add_done_callback(lambda _: self._done())

    def _done(self) -> None:
        if self.cancel.is_set() and not self.cancel.timed_out():
            self._exit("cancelled")
            return
        self._exit("done", {"type": "done", "id": self.id, "steps": self.steps_recorded})

    def _fail(self, message: str, code: str) -> None:
        self._exit("error", {"type": "error", "code": code, "message": message,
                             "field": None, "run": self.id}, error=message)

    def _exit(self, status: str, final: dict | None = None, error: str | None = None) -> None:
        """End the run once. Its place and memory are given back before anyone can see
        that it ended (the final frame, the status): a client that starts its next run
        on `done` is never refused."""
        with self._exit_lock:
            if self._ended:
                return
            self._ended = True
        self.ended_at = time.perf_counter()
        self._engine = None  # its arrays go now; the record stays
        self._steps_iter = None
        if self.on_exit is not None:
            self.on_exit(self)
        if self._stored:  # the store's status is the one GET /api/runs/{id} answers
            status, error, final = self._store_ending(status, error, final)
        self.status, self.error = status, error
        if final is not None:
            self.sink.put(final, keep=True)
        self.sink = _NOBODY  # frames not yet sent stay with the session, if any
        self.finished.set()

    def _store_ending(self, status: str, error: str | None,
                      final: dict | None) -> tuple[str, str | None, dict | None]:
        """done / stopped / error in the store (a run stopped before its first step, or
        replaced mid-way by a new setting and never kept, leaves nothing behind); a store
        that fails turns a done run into an error."""
        dropped = self.steps_recorded == 0 or (self.superseded and not self.keep)
        try:
            if status == "cancelled" and dropped:
                self.store.delete(self.id)
                self._stored = False
            else:
                self.store.finish(self.id, STORED_STATUS[status], error=error,
                                  environment=self.environment, theory=self.theory)
        except Exception as exc:  # a store that is closed (shutdown) or failing
            if status == "done":
                error = f"run store failed ({type(exc).__name__})"
                return "error", error, {"type": "error", "code": "internal",
                                        "message": error, "field": None, "run": self.id}
        return status, error, final

    def _publish_theory(self) -> None:
        """The mean-field prediction (pure NumPy, cached on what it depends on), in
        the one theory thread, THEORY_DELAY after the first frame; skipped for a run
        cancelled meanwhile, so back-to-back updates do not wait behind predictions."""
        if self.cancel.wait(THEORY_DELAY):
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

    # --- what everyone else calls --------------------------------------------------
    def stop(self) -> None:
        if not self.cancel.is_set():
            self.stopped_at = time.perf_counter()
        self.cancel.set()
        if self._theory_future is not None:  # not started: dropped, and its done-
            self._theory_future.cancel()  # callback (a run that had finished) ends the job
        self.control.set_paused(False)  # a paused job gets its turn to end

    def is_alive(self) -> bool:
        return not self.finished.is_set()

    @property
    def stored(self) -> bool:
        """Whether the run store holds this run (GET /api/runs/{id} finds it)."""
        return self._stored

    def join(self, timeout: float | None = None) -> bool:
        return self.finished.wait(timeout)

    @property
    def steps(self) -> list[dict]:
        """The recorded steps so far, from the store (NaN and ±Inf as floats)."""
        return self.record()["steps"]

    def record(self) -> dict[str, Any]:
        """The run record {schema, config, environment, theory, steps} so far."""
        return self.store.record(self.id)


class RunManager:
    """Admission, the scheduler, the live jobs and the run store (every record is there)."""

    def __init__(self, settings: Settings, store: RunStore | None = None):
        self.settings = settings
        self.ledger = Ledger(settings.max_sessions, settings.max_total_bytes,
                             settings.max_run_bytes)
        self.scheduler = Scheduler(settings.workers)
        self.store = store if store is not None else store_for(settings)
        self.live: set[Job] = set()
        self.jobs: dict[str, Job] = {}  # running, by id
        self._lock = threading.Lock()

    def new_id(self) -> str:
        return new_run_id()

    def start(self, spec: RunSpec, sink: FrameSink, config: dict, paused: bool = False,
              source: str = "live") -> Job:
        """Admit and schedule a run (OverBudget: never fits; Refused: retry later)."""
        cost = run_cost(spec)
        self.ledger.admit(cost)
        job = Job(spec, sink, self.settings, self.new_id(), cost, paused=paused,
                  on_exit=self._exited, store=self.store, source=source)
        job.config = config
        with self._lock:
            self.live.add(job)
            self.jobs[job.id] = job
        self.scheduler.submit(job)
        return job

    def start_headless(self, spec: RunSpec, config: dict) -> Job:
        return self.start(spec, FrameSink(None), config, source="headless")

    def _exited(self, job: Job) -> None:
        self.ledger.release(job.cost)
        with self._lock:
            self.live.discard(job)
            self.jobs.pop(job.id, None)

    def get(self, run_id: str) -> Job | None:
        """The running job with this id (a finished run is in the store only)."""
        return self.jobs.get(run_id)

    def keep(self, run_id: str) -> None:
        """A running run that was exported or named stays in the store however it ends."""
        job = self.jobs.get(run_id)
        if job is not None:
            job.keep = True

    def cancel(self, job: Job) -> None:
        job.stop()
        self.scheduler.stop(job)

    async def stop(self, job: Job) -> None:
        """Cancel a job and wait until it has ended (at most the rest of one layer)."""
        self.cancel(job)
        if not job.finished.is_set():
            await asyncio.to_thread(job.finished.wait, STOP_WAIT_S)

    @property
    def active(self) -> int:
        return len(self.live)

    def shutdown(self) -> None:
        """Stop every job, let each store its ending, then close the store."""
        jobs = list(self.live)
        for job in jobs:
            self.cancel(job)
        for job in jobs:  # each stores its ending before the store closes
            job.finished.wait(2.0)
        self.scheduler.close()
        self.store.close()
