"""WS /api/live: start/update/pause/resume/step/stop in, run/step/done/error out.

A receive loop and a send loop run side by side: a disconnect ends the receive
loop, which cancels the job and waits for its thread; the sender throttles
ordinary frames to the configured rate and sends kept frames (run, first step,
overflow, done, error) at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from ...runs.codec import encode_str
from ...runs.manager import FrameSink, Job, Refused, RunManager
from ..deps import ManagerDep
from ..schemas import validate_config

router = APIRouter(tags=["live"])

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
BIG_FRAME = 32_768  # step frames estimated above this many bytes are encoded off the loop


def origin_allowed(ws: WebSocket, extra: list[str]) -> bool:
    """Same origin (scheme-less host:port match) or an allow-listed origin; no Origin
    header means a non-browser client, which CORS-style checks do not cover anyway."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True
    if origin in extra:
        return True
    return urlsplit(origin).netloc == ws.headers.get("host", "")


class LiveSession:
    def __init__(self, ws: WebSocket, manager: RunManager):
        self.ws, self.manager = ws, manager
        self.settings = manager.settings
        self.sink = FrameSink(asyncio.get_running_loop())
        self.job: Job | None = None
        self.closed = False

    def error(self, code: str, message: str, field: str | None = None) -> None:
        self.sink.put({"type": "error", "code": code, "message": message, "field": field},
                      keep=True)

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_loop())
        try:
            await self._receive_loop()
        finally:
            self.closed = True
            sender.cancel()
            if self.job is not None:
                await self.manager.stop(self.job)

    async def _receive_loop(self) -> None:
        limit = self.settings.max_message_bytes
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = (message.get("bytes") or b"").decode("utf-8", "replace")
            if len(raw) > limit:
                self.error("too_large", f"message of {len(raw)} bytes is over the limit of "
                                        f"{limit} (setting BACKPROPLAB_MAX_MESSAGE_BYTES)")
                await self._flush_and_close(CLOSE_TOO_BIG, "message too big")
                return
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                self.error("bad_json", f"not valid JSON: {exc}")
                continue
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                self.error("bad_message", 'every message is a JSON object with a "type"',
                           "type")
                continue
            if await self._handle(msg):
                return

    async def _handle(self, msg: dict[str, Any]) -> bool:
        """Dispatch one message; True when the connection should end."""
        kind = msg["type"]
        if kind in ("start", "update"):
            return await self._start(msg, paused=bool(msg.get("paused", False)))
        if kind == "ping":
            self.sink.put({"type": "pong", "t": msg.get("t")}, keep=True)
            return False
        if kind not in ("pause", "resume", "step", "stop"):
            self.error("unknown_type", f"unknown message type {kind!r}; expected start, "
                                       f"update, pause, resume, step, stop or ping", "type")
            return False
        if self.job is None or not self.job.thread.is_alive():
            self.error("no_run", f"'{kind}' needs a running run: send 'start' first")
            return False
        if kind == "pause":
            self.job.control.set_paused(True)
        elif kind == "resume":
            self.job.control.set_paused(False)
        elif kind == "step":
            self.job.control.add_step()
        else:
            await self.manager.stop(self.job)
            self.sink.put({"type": "stopped", "id": self.job.id}, keep=True)
        return False

    async def _start(self, msg: dict[str, Any], paused: bool) -> bool:
        config = msg.get("config")
        if not isinstance(config, dict):
            self.error("bad_message", f"'{msg['type']}' needs a \"config\" object", "config")
            return False
        try:
            cfg = validate_config(config, self.settings.compute_budget)
        except ValidationError as exc:
            first = exc.errors(include_input=False)[0]
            field = ".".join(str(p) for p in first["loc"]) or None
            self.error("invalid_config", f"{field or 'config'}: {first['msg']}", field)
            return False
        if self.job is not None:
            await self.manager.stop(self.job)  # cancel the old run, wait for its thread
            self.sink.take()  # drop frames of the old run that were not sent yet
        try:
            self.job = self.manager.start(cfg.to_spec(), self.sink, cfg.model_dump(),
                                          paused=paused)
        except Refused as exc:
            self.job = None
            self.error("busy", str(exc))
            await self._flush_and_close(CLOSE_TRY_AGAIN, "server busy")
            return True
        return False

    async def _flush_and_close(self, code: int, reason: str) -> None:
        for frame in self.sink.take():
            await self._send(frame)
        await self.ws.close(code=code, reason=reason)

    async def _send(self, frame: dict) -> None:
        text = getattr(frame, "text", None)  # a step frame the job encoded for the store
        if text is None:
            if frame.get("type") == "step" and len(frame.get("layers", ())) * 900 > BIG_FRAME:
                text = await asyncio.to_thread(encode_str, frame)
            else:
                text = encode_str(frame)
        await asyncio.wait_for(self.ws.send_text(text), self.settings.send_timeout)

    async def _send_loop(self) -> None:
        """Kept frames go at once; ordinary step frames at most `frame_rate` per second,
        coalesced to the newest while the client or the throttle is behind."""
        interval = 1.0 / self.settings.frame_rate
        last = -interval
        sink = self.sink
        try:
            while True:
                await sink.ready.wait()
                sink.ready.clear()
                for frame in sink.take_kept():
                    await self._send(frame)
                if sink.has_latest():
                    # wait for the throttle slot, but send kept frames (a new run's first
                    # step, an overflow, done) the moment they arrive
                    deadline = last + interval
                    while (remaining := deadline - time.monotonic()) > 0:
                        sink.ready.clear()
                        try:
                            await asyncio.wait_for(sink.ready.wait(), remaining)
                        except TimeoutError:
                            break
                        for frame in sink.take_kept():
                            await self._send(frame)
                    for frame in sink.take():
                        await self._send(frame)
                    last = time.monotonic()
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            if not self.closed:  # a send that blocked too long: drop the slow client
                with contextlib.suppress(Exception):
                    await self.ws.close(code=CLOSE_POLICY, reason="client too slow")


@router.websocket("/api/live")
async def live(ws: WebSocket, manager: ManagerDep) -> None:
    """The live lab's stream (the protocol: README, "The live protocol", and /docs)."""
    if not origin_allowed(ws, manager.settings.allowed_origins):
        await ws.close(code=CLOSE_POLICY, reason="origin not allowed")
        return
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await LiveSession(ws, manager).run()
