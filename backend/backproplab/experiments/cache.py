"""Finished experiment results kept by config hash, behind one small interface
(`get`, `put`), so a repeated request is answered at once. In memory, or also as
files in a directory (survives a restart); a run store can take its place."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)


def _readable(path: Path, key: str) -> dict[str, Any] | None:
    """The result a file holds, or None if it is not one: not strict JSON, or not an
    experiment result of this config hash."""
    from ..runs.codec import decode

    try:
        found = decode(path.read_bytes())
    except (OSError, ValueError):
        return None
    return found if well_formed(found, key) else None


def well_formed(result: Any, key: str) -> bool:
    """Whether `result` has the shape run_experiment gives (what the job, the result
    route and the report read), for this config hash."""
    from .run import SCHEMA

    def typed(d: Any, **types: Any) -> bool:
        return isinstance(d, dict) and all(isinstance(d.get(k), t) for k, t in types.items())

    return typed(result, schema=str, experiment=str, title=str, paper=str, summary=str,
                 config=dict, config_hash=str, runs=list, checks=list, figures=list,
                 execution=dict) \
        and result["schema"] == SCHEMA and result["config_hash"] == key \
        and typed(result["config"], quick=bool, seed=int) \
        and isinstance(result["execution"].get("seconds"), (int, float)) \
        and all(typed(c, **{"name": str, "pass": bool}) for c in result["checks"]) \
        and all(typed(f, data=list, layout=dict) for f in result["figures"])


class ResultCache(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, result: dict[str, Any]) -> None: ...


class MemoryCache:
    """The newest `size` results, least recently used dropped first."""

    def __init__(self, size: int = 32):
        self.size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: str, result: dict[str, Any]) -> None:
        with self._lock:
            self._items[key] = result
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class DirectoryCache(MemoryCache):
    """Memory in front of `<dir>/<hash>.json` files (strict JSON, written atomically)."""

    def __init__(self, directory: str | Path, size: int = 32):
        super().__init__(size)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict[str, Any] | None:
        found = super().get(key)
        path = self.directory / f"{key}.json"
        if found is None and path.is_file():
            found = _readable(path, key)
            if found is None:  # damaged (a disk filled, a hand edit): set aside, run again
                log.warning("experiment result %s is not readable; moved to %s.bad and "
                            "computed again", path, path.name)
                with contextlib.suppress(OSError):
                    path.replace(path.with_name(path.name + ".bad"))
                return None
            super().put(key, found)
        return found

    def put(self, key: str, result: dict[str, Any]) -> None:
        from ..runs.codec import encode

        super().put(key, result)
        tmp = self.directory / f".{key}.json.tmp"
        tmp.write_bytes(encode(result))
        tmp.replace(self.directory / f"{key}.json")
