"""Watched runs pushed into the server by `backproplab.watch(..., server=...)`, kept in
the run store (source "watched") as the Lab's runs are: each pushed batch of steps is
committed before the push is answered, so a server restart or a reloaded page loses
nothing that was received, and the Runs page opens, compares and exports them like
any other run. This module is the Watch page's view of them: its summaries (live,
finished, interrupted), the steps after the one a page has, and the bounds on a push.

A run the server was receiving when it stopped is `interrupted` on the next start;
a script still pushing to it makes it live again."""

from __future__ import annotations

from typing import Any

from .store import NotFound, RunStore

SOURCE = "watched"
# the Watch page's words for the store's statuses
STATUS = {"running": "live", "done": "finished", "stopped": "finished",
          "interrupted": "interrupted", "error": "error"}


class Refused(Exception):
    """A push over a bound (steps or bytes of one run): the message says which."""


def summary(entry: dict[str, Any]) -> dict[str, Any]:
    """A stored watched run as the Watch page lists it."""
    config, figures = entry["config"], entry["summary"]
    first = figures.get("first_nonfinite")
    return {"id": entry["id"], "name": config.get("name"), "model": config.get("model"),
            "status": STATUS.get(entry["status"], entry["status"]),
            "modules": len(config.get("modules") or ()),
            "parameters": config.get("parameters"), "steps": entry["steps"],
            "last_step": figures.get("final_step"), "loss": figures.get("final_loss"),
            # the watcher's own {step, module, in, what}; not the store's layer scan
            "first_nonfinite": {k: first[k] for k in ("step", "module", "in", "what")}
            if first and "in" in first else None,
            "created": entry["created"], "updated": entry["updated"]}


def _first_nonfinite(found: dict[str, Any]) -> dict[str, Any]:
    """The watcher's first non-finite value as the store's summary figure: its own
    fields and `layer`, the words the Runs page and `backproplab runs` show after
    "layer": the module's name, or "loss" when only the loss was."""
    return {"step": found["step"], "layer": found.get("module") or "loss",
            "module": found.get("module"), "in": found["in"], "what": found["what"]}


class WatchedRuns:
    """The server's watched runs, in its run store. Thread-safe (the store is)."""

    def __init__(self, store: RunStore, max_runs: int = 16, max_steps: int = 100_000,
                 max_run_bytes: int | None = None):
        self.store, self.max_runs, self.max_steps = store, max_runs, max_steps
        self.max_run_bytes = max_run_bytes

    def create(self, head: dict[str, Any]) -> str:
        """The run, named as `watch(name=...)` named it (the model's class name, the
        default, leaves it unnamed: a named run is never pruned)."""
        config = head["config"]
        name = config.get("name")
        if name == config.get("model"):
            name = None
        return self.store.create(config, SOURCE, name=name, environment=head.get("environment"),
                                 theory=None, schema=head["schema"])

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The stored run's index entry, if it is a watched run."""
        try:
            entry = self.store.get(run_id)
        except NotFound:
            return None
        return entry if entry["source"] == SOURCE else None

    def append(self, run_id: str, steps: list[dict[str, Any]]) -> int | None:
        """Store the steps (one transaction); the run's step count, None when there is
        no such run; Refused over a bound or when the run has finished."""
        entry = self.get(run_id)
        if entry is None:
            return None
        if entry["status"] not in ("running", "interrupted"):
            raise Refused(f"watched run {run_id} has finished; a new watch() starts a new run")
        if entry["steps"] + len(steps) > self.max_steps:
            raise Refused(f"watched run {run_id} has {entry['steps']} steps stored, the most "
                          f"one run may hold is {self.max_steps} (the out file has them all; "
                          f"watch(every=...) records fewer)")
        if self.max_run_bytes is not None and entry["bytes"] > self.max_run_bytes:
            raise Refused(f"watched run {run_id} holds {entry['bytes']} bytes, over the "
                          f"{self.max_run_bytes} one run may take in the store")
        if entry["status"] == "interrupted":
            self.store.resume(run_id)
        count = self.store.append_steps(run_id, steps)
        found = next((s["first_nonfinite"] for s in steps if s.get("first_nonfinite")), None)
        if found is not None and "in" not in (entry["summary"].get("first_nonfinite") or {}):
            self.store.merge_summary(run_id, {"first_nonfinite":
                                              _first_nonfinite(found)})
        return count

    def end(self, run_id: str, first_nonfinite: dict[str, Any] | None) -> int | None:
        """The script closed its watcher: the run is finished (done)."""
        entry = self.get(run_id)
        if entry is None:
            return None
        if first_nonfinite and "in" not in (entry["summary"].get("first_nonfinite") or {}):
            self.store.merge_summary(run_id, {"first_nonfinite":
                                              _first_nonfinite(first_nonfinite)})
        if entry["status"] in ("running", "interrupted"):
            self.store.finish(run_id, "done")
        return entry["steps"]

    def list(self) -> list[dict[str, Any]]:
        """The newest `max_runs` watched runs, newest first."""
        return [summary(e) for e in self.store.list(source=SOURCE, limit=self.max_runs)]

    def since(self, run_id: str, after: int, limit: int) -> dict[str, Any] | None:
        """The run's summary and config, and its steps with step number > after (the
        newest `limit`)."""
        entry = self.get(run_id)
        if entry is None:
            return None
        return {"run": summary(entry), "config": entry["config"],
                "steps": self.store.steps_after(run_id, after, limit)}

    def first_nonfinite(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The run's first non-finite value in the record's own form, or None."""
        return summary(entry)["first_nonfinite"]
