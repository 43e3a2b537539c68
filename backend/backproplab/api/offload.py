"""Uploaded run records (import, report) parsed and validated away from the event
loop: in a thread when small, in a separate process when large. Parsing and
validating tens of megabytes of JSON is C code that holds the GIL for seconds, so
a thread alone would still stall every other request."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..runs.codec import encode
from .records import validate_record

IN_PROCESS_BYTES = 1 << 20  # bodies below this are handled in a thread
MAX_ECHO = 64  # characters of a request's own text (a field name) an error repeats
_pool: ProcessPoolExecutor | None = None


def short(part: Any, limit: int = MAX_ECHO) -> Any:
    return part if not isinstance(part, str) or len(part) <= limit else \
        part[:limit] + f"… ({len(part)} characters)"


def plain(msg: str) -> str:
    """A validator's own words, without pydantic's "Value error, " before them."""
    for lead in ("Value error, ", "Assertion failed, "):
        if msg.startswith(lead):
            return msg[len(lead):]
    return msg


def error_list(errors: list[dict], prefix: tuple = ()) -> list[dict]:
    """422 details: where and why, never the (possibly huge) input echoed back."""
    return [{"loc": [short(p) for p in (*prefix, *e.get("loc", ()))],
             "msg": short(plain(str(e.get("msg", ""))), 400), "type": e.get("type", "")}
            for e in errors]


def strict_json(body: bytes) -> Any:
    """The WebSocket's parser: bare NaN, Infinity and numbers beyond the float range
    (1e400) are errors on every entry point alike; so is nesting past codec.MAX_DEPTH
    (an answer that echoes it could not be encoded)."""
    from ..runs.codec import check_depth

    return check_depth(orjson.loads(body))


def checked_record(body: bytes) -> tuple[int, bytes, dict | None]:
    """(status, JSON bytes, the normalized record or None) for an uploaded record."""
    from ..runs.jsonl import RecordFormatError, parse_record

    try:  # one JSON document, or JSON lines (strict: bare NaN, 1e400 are errors)
        data = parse_record(body)
    except RecordFormatError as exc:
        return 422, encode({"detail": [{"loc": ["body"], "msg": short(str(exc), 400),
                                        "type": "json_invalid"}]}), None
    if not isinstance(data, dict):
        return 422, encode({"detail": [{"loc": ["body"], "msg": "a run record is a JSON object",
                                        "type": "dict_type"}]}), None
    try:
        record = validate_record(data)
    except ValidationError as exc:
        return 422, encode({"detail": error_list(exc.errors(include_input=False),
                                                 ("body",))}), None
    return 200, encode(record), record


def import_bytes(body: bytes) -> tuple[int, bytes]:
    status, data, _ = checked_record(body)
    return status, data


def import_rows(body: bytes) -> tuple[int, bytes, dict | None]:
    """`import_bytes`, and the record cut into the run store's rows, done here too, so
    the server stores a large upload with nothing left to encode on its side."""
    from ..runs.store import prepare_record

    status, data, record = checked_record(body)
    return status, data, prepare_record(record) if record is not None else None


def report_bytes(body: bytes) -> tuple[int, bytes]:
    from ..report import RecordError, report_html

    status, data, record = checked_record(body)
    if record is None:
        return status, data
    if not record["steps"]:
        return 422, encode({"detail": "the record has no steps"})
    try:
        return 200, report_html(record).encode()
    except RecordError as exc:
        return 422, encode({"detail": str(exc)})


async def off_loop(fn, body: bytes) -> tuple:
    """`fn(body)` in a thread (small bodies) or in the worker process (large ones)."""
    global _pool
    if len(body) < IN_PROCESS_BYTES:
        return await run_in_threadpool(fn, body)
    if _pool is None:
        _pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                    max_tasks_per_child=64)
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, body)


def shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
