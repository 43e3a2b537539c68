"""Work that takes seconds in a request: run in a worker thread of its own limiter
(never the pool every other route shares), stopped when the client leaves, when it
runs past its time, or when the server stops.

`Measurement` is one kind of such work (the compiled view, the memory view): one at
a time, since two at once would disturb each other's timings; a bounded line of
waiters (a full line answers 429 with Retry-After); results cached per network."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import anyio
from fastapi import HTTPException, Request

from ..engines.base import Cancelled

RETRY_SECONDS = 5
MEASUREMENT_ANSWERS = {  # what a measured route answers besides its report (OpenAPI)
    429: {"description": "too many measurements asked for at once"},
    503: {"description": "the measurement ran too long, or the server is stopping"}}
_LIVE: weakref.WeakSet = weakref.WeakSet()  # every Measurement, stopped at exit


async def until_disconnected(request: Request, compute: Callable[[], Any],
                             cancel: threading.Event, limiter: anyio.CapacityLimiter) -> Any:
    """Run `compute` in a worker thread under `limiter`; if the client disconnects
    meanwhile, set `cancel` (compute checks it as it goes) and wait for the thread."""
    task = asyncio.ensure_future(anyio.to_thread.run_sync(compute, limiter=limiter))
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.05)
        if done:
            return task.result()
        if await request.is_disconnected():
            cancel.set()
            with contextlib.suppress(Exception):
                await task
            raise Cancelled()


class Measurement:
    """One kind of measurement: `await run(request, key, compute)`, where
    compute(check) does the work and calls check() between its parts."""

    def __init__(self, what: str, seconds: float, max_waiting: int = 8, cached: int = 16,
                 hint: str = "try a smaller network"):
        self.what, self.seconds, self.max_waiting, self.cached, self.hint = \
            what, seconds, max_waiting, cached, hint
        self.limiter = anyio.CapacityLimiter(1)
        self.waiting = 0  # asked for and not yet answered (the running one included)
        self.stopping = threading.Event()
        self._state = threading.Condition()  # guards _running and _cache (loop and thread)
        self._running = 0
        self._cache: OrderedDict[Hashable, Any] = OrderedDict()
        _LIVE.add(self)

    def stop(self, wait: float = 0.0) -> None:
        """The server stops: the running measurement ends at its next check (its client
        gets a 503), waiters end before they start; wait up to `wait` s for the end."""
        self.stopping.set()
        if wait:
            with self._state:
                self._state.wait_for(lambda: self._running == 0, wait)

    def _cached(self, key: Hashable) -> Any | None:
        """The kept result (or None): read on the event loop and in the worker thread."""
        with self._state:
            if key not in self._cache:
                return None
            self._cache.move_to_end(key)
            return self._cache[key]

    def _keep(self, key: Hashable, result: Any) -> None:
        with self._state:
            self._cache[key] = result
            while len(self._cache) > self.cached:
                self._cache.popitem(last=False)

    async def run(self, request: Request, key: Hashable,
                  compute: Callable[[Callable[[], None]], Any]) -> Any:
        if (kept := self._cached(key)) is not None:
            return kept
        if self.stopping.is_set():
            raise HTTPException(503, "the server is stopping")
        if self.waiting >= self.max_waiting:
            raise HTTPException(429, f"{self.waiting} {self.what} measurements are already "
                                     f"asked for, the most this server takes at once; "
                                     f"retry in {RETRY_SECONDS} s",
                                headers={"retry-after": str(RETRY_SECONDS)})
        cancel = threading.Event()

        deadline = [float("inf")]  # from when its turn comes

        def check() -> None:
            if cancel.is_set() or self.stopping.is_set():
                raise Cancelled()
            if time.monotonic() > deadline[0]:
                raise TimeoutError()

        def work() -> Any:
            if (kept := self._cached(key)) is not None:  # measured while this one waited
                return kept
            _stop_at_exit()
            deadline[0] = time.monotonic() + self.seconds
            with self._state:
                self._running += 1
            try:
                check()
                result = compute(check)
            finally:
                with self._state:
                    self._running -= 1
                    self._state.notify_all()
            self._keep(key, result)
            return result

        self.waiting += 1
        try:
            return await until_disconnected(request, work, cancel, self.limiter)
        except TimeoutError:
            raise HTTPException(503, f"the {self.what} measurement took longer than "
                                     f"{self.seconds:g} s (setting "
                                     f"BACKPROPLAB_MAX_REQUEST_SECONDS); {self.hint}") \
                from None
        except Cancelled:
            if self.stopping.is_set():
                raise HTTPException(503, f"the server is stopping: the {self.what} "
                                         f"measurement was cut short") from None
            raise HTTPException(499, "the client went away") from None
        finally:
            self.waiting -= 1


@functools.cache
def _stop_at_exit() -> None:
    # registered after jax's own exit hooks, so that it runs before them
    with contextlib.suppress(ImportError):
        import jax  # noqa: F401
    atexit.register(_stop_all)


def _stop_all() -> None:
    """A measurement still running when the process exits stops at its next check,
    before the interpreter goes away under its thread (JAX's runtime aborts the
    process when a thread is torn down inside it)."""
    for measurement in list(_LIVE):
        measurement.stop(wait=60)
