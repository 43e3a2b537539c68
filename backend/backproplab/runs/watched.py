"""Watched runs pushed into the server by `backproplab.watch(..., server=...)`: kept
in memory behind one small interface (create, append, end, list, get), the newest
`max_runs` runs, each with a thinned history of at most `max_steps` steps (the whole
record is in the training script's `out` file). The persistent run store can take
this interface's place."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WatchedRun:
    id: str
    head: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    status: str = "live"  # live, then finished
    first_nonfinite: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    received: int = 0
    seq: int = 0  # counts appends: a client asks for what came after the seq it saw

    def summary(self) -> dict[str, Any]:
        config = self.head["config"]
        last = self.steps[-1] if self.steps else None
        return {"id": self.id, "name": config["name"], "model": config["model"],
                "status": self.status, "modules": len(config["modules"]),
                "parameters": config["parameters"], "steps": self.received,
                "last_step": last["step"] if last else None,
                "loss": last["loss"] if last else None,
                "first_nonfinite": self.first_nonfinite, "created": self.created,
                "updated": self.updated}

    def record(self) -> dict[str, Any]:
        return {**self.head, "steps": list(self.steps), "first_nonfinite": self.first_nonfinite}


class WatchedRuns:
    """Thread-safe; the server's one registry of watched runs."""

    def __init__(self, max_runs: int = 16, max_steps: int = 10_000):
        self.max_runs, self.max_steps = max_runs, max_steps
        self.runs: OrderedDict[str, WatchedRun] = OrderedDict()
        self.lock = threading.Lock()
        self.counter = itertools.count(1)

    def create(self, head: dict[str, Any]) -> WatchedRun:
        with self.lock:
            run = WatchedRun(id=f"w{next(self.counter)}-{secrets.token_hex(3)}", head=head)
            self.runs[run.id] = run
            while len(self.runs) > self.max_runs:
                self.runs.popitem(last=False)
            return run

    def append(self, run_id: str, steps: list[dict[str, Any]]) -> WatchedRun | None:
        with self.lock:
            run = self.runs.get(run_id)
            if run is None:
                return None
            for step in steps:
                if step.get("first_nonfinite") and run.first_nonfinite is None:
                    run.first_nonfinite = step["first_nonfinite"]
                run.steps.append(step)
            run.received += len(steps)
            run.seq += len(steps)
            if len(run.steps) > self.max_steps:  # thin the old half, keep the recent
                half = self.max_steps // 2
                run.steps = run.steps[:-half][::2] + run.steps[-half:]
            run.updated = time.time()
            return run

    def end(self, run_id: str, first_nonfinite: dict[str, Any] | None) -> WatchedRun | None:
        with self.lock:
            run = self.runs.get(run_id)
            if run is None:
                return None
            run.status = "finished"
            run.first_nonfinite = run.first_nonfinite or first_nonfinite
            run.updated = time.time()
            return run

    def list(self) -> list[dict[str, Any]]:
        with self.lock:
            return [run.summary() for run in reversed(self.runs.values())]

    def get(self, run_id: str) -> WatchedRun | None:
        with self.lock:
            return self.runs.get(run_id)

    def since(self, run_id: str, after: int, limit: int) -> dict[str, Any] | None:
        """The run's summary and config, and its steps with step number > after (the
        newest `limit`)."""
        with self.lock:
            run = self.runs.get(run_id)
            if run is None:
                return None
            newer = [s for s in run.steps if s["step"] > after][-limit:]
            return {"run": run.summary(), "config": run.head["config"], "steps": newer}
