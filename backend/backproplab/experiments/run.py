"""Run an experiment end to end: its tasks on a backend, then figures and checks,
as one result {schema, experiment, config, config_hash, runs, checks, figures, ...}."""

from __future__ import annotations

import hashlib
import json
import platform
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .execute import execute

SCHEMA = "backproplab.experiment/1"
Progress = Callable[[int, int, dict[str, Any]], None]  # (done, total, the task finished)


def config_hash(name: str, quick: bool, seed: int) -> str:
    """What the numbers depend on: the experiment, its size, the seed, its task list and
    the code's version (not where it ran: every backend gives the same numbers)."""
    from .. import __version__
    from . import get

    tasks = get(name).tasks(quick, seed)
    text = json.dumps({"experiment": name, "quick": quick, "seed": seed, "tasks": tasks,
                       "version": __version__}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_experiment(name: str, quick: bool = False, seed: int = 0, workers: int = 0,
                   ray_address: str | None = None, on_progress: Progress | None = None,
                   cancel: threading.Event | None = None,
                   ship_code: bool = False) -> dict[str, Any]:
    from .. import __version__
    from . import get

    experiment = get(name)
    tasks = experiment.tasks(quick, seed)
    done = 0

    def on_result(index: int, result: dict) -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, len(tasks), tasks[index])

    if on_progress is not None:
        on_progress(0, len(tasks), {})
    started = time.time()
    results, execution = execute(tasks, on_result, workers, ray_address, cancel, ship_code)
    figures, checks = experiment.analyze(tasks, results, quick)
    return {
        "schema": SCHEMA, "experiment": name, "title": experiment.title,
        "paper": experiment.paper, "summary": experiment.summary,
        "config": {"quick": quick, "seed": seed},
        "config_hash": config_hash(name, quick, seed),
        "runs": [{**t, "result": r} for t, r in zip(tasks, results, strict=True)],
        "checks": checks, "passed": all(c["pass"] for c in checks), "figures": figures,
        "execution": {**execution, "started": started},
        "environment": {"backproplab": __version__, "python": platform.python_version(),
                        "numpy": np.__version__, "platform": platform.platform()},
    }
