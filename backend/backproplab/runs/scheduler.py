"""Fair-share scheduling of admitted runs, a step at a time.

A few worker threads (about one per core) take turns over the runnable jobs. Each
job carries a virtual time, the compute time it has used; a free worker runs one
step of the runnable job with the least virtual time (start-time fair queueing,
as Linux's CFS does for threads), so every run gets an equal share of the cores
whatever its step costs: a 5 ms run takes many turns while a 300 ms run takes one.
A new job starts at the front (its first frame is never kept waiting), and a job
that was paused comes back at the current virtual time, not with credit saved up.

One more worker takes only light jobs (a turn shorter than LIGHT_SECONDS, measured,
or for a new job predicted from its size): with every core busy with heavy steps, a
new small run still gets its first frame within one of its own steps. The other
workers run at a lower OS priority (nice +5) than that one and the event loop, so
the cores go to interactive work first when there are more threads than cores.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Protocol

LIGHT_SECONDS = 0.05
HEAVY_NICE = 5
AVERAGING = 0.3  # weight of the newest turn in a job's moving average


class Schedulable(Protocol):
    vtime: float
    step_seconds: float | None
    predicted_seconds: float
    running: bool

    def runnable(self) -> bool: ...

    def advance(self) -> bool: ...


def _light(job: Schedulable) -> bool:
    seconds = job.predicted_seconds if job.step_seconds is None else job.step_seconds
    return seconds < LIGHT_SECONDS


class Scheduler:
    def __init__(self, workers: int, interactive: bool = True):
        self._cond = threading.Condition()
        self._ready: list[Schedulable] = []
        self._parked: set = set()
        self._running: set = set()
        self._clock = 0.0  # the least virtual time of the jobs that have work
        self._closed = False
        lanes = ["any"] * workers + (["light"] if interactive else [])
        self.threads = [threading.Thread(target=self._work, args=(lane,), daemon=True,
                                         name=f"worker-{i}-{lane}")
                        for i, lane in enumerate(lanes)]
        self._started = False

    def _start(self) -> None:
        """On the first job: an app that never runs one starts no threads."""
        if not self._started:
            self._started = True
            self._limit_blas()
            for thread in self.threads:
                thread.start()

    @staticmethod
    def _limit_blas() -> None:
        """One BLAS thread per step: the workers are the parallelism."""
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            return
        threadpool_limits(limits=1, user_api="blas")

    def submit(self, job: Schedulable) -> None:
        with self._cond:
            self._start()
            job.vtime = self._floor() - 1e-6  # a new run goes first
            self._ready.append(job)
            self._cond.notify_all()
        job.control.on_change = lambda: self.wake(job)

    def wake(self, job: Schedulable) -> None:
        """A paused job was resumed, stepped or cancelled: runnable again."""
        with self._cond:
            if job in self._parked:
                self._parked.discard(job)
                job.vtime = max(job.vtime, self._floor())
                self._ready.append(job)
                self._cond.notify_all()

    def stop(self, job: Schedulable) -> None:
        """Cancel: a waiting job ends now; a running one at its next check."""
        with self._cond:
            waiting = job in self._parked or job in self._ready
            self._parked.discard(job)
            if job in self._ready:
                self._ready.remove(job)
        if waiting:
            job.advance()  # sees the cancel at once and ends the job (no step runs)

    def _floor(self) -> float:
        jobs = self._ready + list(self._running)
        if jobs:
            self._clock = max(self._clock, min(j.vtime for j in jobs))
        return self._clock

    def _take(self, lane: str) -> Schedulable | None:
        best = None
        for job in self._ready:
            if lane == "light" and not _light(job):
                continue
            if best is None or job.vtime < best.vtime:
                best = job
        return best

    def _work(self, lane: str) -> None:
        if lane == "any":  # Linux: a thread's own nice value (raising it needs no rights)
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HEAVY_NICE)
        while True:
            with self._cond:
                while not self._closed and (job := self._take(lane)) is None:
                    self._cond.wait()
                if self._closed:
                    return
                self._ready.remove(job)
                self._running.add(job)
                job.running = True
            started = time.perf_counter()
            try:
                more = job.advance()
            except BaseException:  # advance handles its errors; never lose a worker
                more = False
            elapsed = time.perf_counter() - started
            with self._cond:
                job.running = False
                self._running.discard(job)
                job.vtime += elapsed
                job.step_seconds = elapsed if job.step_seconds is None else \
                    AVERAGING * elapsed + (1 - AVERAGING) * job.step_seconds
                if more:
                    (self._ready.append if job.runnable() else self._parked.add)(job)
                self._cond.notify_all()

    def counts(self) -> dict[str, int]:
        with self._cond:
            return {"ready": len(self._ready), "running": len(self._running),
                    "paused": len(self._parked)}

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
