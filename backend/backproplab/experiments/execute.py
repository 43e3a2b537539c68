"""Where the tasks run: in this process (the default), on a local process pool, or
as Ray core tasks on a cluster. Every backend runs the same `run_task` on the same
task dicts, so the same seed gives the same numbers; results come back as they
finish (`on_result(index, result)`), in whatever order, and are returned in task order.

Cancelling (setting `cancel`) stops at once in this process (checked between
steps and layers), drops the queued tasks of a pool, and cancels Ray's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ..engines import Cancelled
from .tasks import run_task

OnResult = Callable[[int, dict[str, Any]], None]


def run_in_process(tasks: list[dict], on_result: OnResult,
                   cancel: threading.Event | None = None) -> list[dict]:
    results: list[Any] = [None] * len(tasks)
    for index, task in enumerate(tasks):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        results[index] = run_task(task, cancel)
        on_result(index, results[index])
    return results


def run_on_pool(tasks: list[dict], on_result: OnResult, workers: int,
                cancel: threading.Event | None = None) -> list[dict]:
    """A pool of `workers` fresh interpreters (spawned, not forked: safe from a
    threaded server, and each worker's BLAS starts clean)."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    results: list[Any] = [None] * len(tasks)
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        pending = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            for future in done:
                index = pending.pop(future)
                results[index] = future.result()
                on_result(index, results[index])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def connect_ray(address: str, ship_code: bool = False) -> Any:
    """Connect to a Ray cluster ('auto': the one started on this machine with `ray
    start`; or 'host:port' of its head). ship_code uploads this backproplab package to
    the workers (for nodes that do not have it installed; its dependencies must be)."""
    try:
        import ray
    except ImportError:
        raise ValueError("running on Ray needs the ray package: "
                         "pip install 'backproplab[ray]'") from None
    if not ray.is_initialized():
        runtime_env = None
        if ship_code:
            import backproplab

            runtime_env = {"py_modules": [backproplab]}
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False,
                 logging_level="warning")
    return ray


def run_on_ray(tasks: list[dict], on_result: OnResult, address: str,
               cancel: threading.Event | None = None, ship_code: bool = False) -> list[dict]:
    """One Ray core task per task (1 CPU each); the cluster schedules them."""
    ray = connect_ray(address, ship_code)
    remote = ray.remote(num_cpus=1)(run_task)
    results: list[Any] = [None] * len(tasks)
    refs = {remote.remote(task): i for i, task in enumerate(tasks)}
    try:
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.2)
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            for ref in ready:
                index = refs.pop(ref)
                results[index] = ray.get(ref)
                on_result(index, results[index])
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
    return results


def execute(tasks: list[dict], on_result: OnResult | None = None, workers: int = 0,
            ray_address: str | None = None, cancel: threading.Event | None = None,
            ship_code: bool = False) -> tuple[list[dict], dict[str, Any]]:
    """(results in task order, how they ran {backend, workers, seconds})."""
    on_result = on_result or (lambda index, result: None)
    start = time.perf_counter()
    if ray_address:
        results = run_on_ray(tasks, on_result, ray_address, cancel, ship_code)
        backend = {"backend": "ray", "address": ray_address}
    elif workers and workers > 0:
        results = run_on_pool(tasks, on_result, workers, cancel)
        backend = {"backend": "pool", "workers": workers}
    else:
        results = run_in_process(tasks, on_result, cancel)
        backend = {"backend": "in-process"}
    backend["seconds"] = time.perf_counter() - start
    return results, backend
