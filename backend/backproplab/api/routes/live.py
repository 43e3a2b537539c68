"""WS /api/live: start/update/pause/resume/step/stop in, run/step/done/error out.

A receive loop and a send loop run side by side: a disconnect ends the receive
loop, which cancels the job and waits for it to end; the sender throttles
ordinary frames to the configured rate and sends kept frames (run, first step,
overflow, done, error) at once. A client that reads nothing for the send timeout
is cut off at the transport (a close frame would wait behind the unread data)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from ...runs.budget import OverBudget
from ...runs.codec import encode_str
from ...runs.manager import FrameSink, Job, Refused, RunManager
from ..deps import ManagerDep
from ..offload import plain, short, strict_json
from ..schemas import validate_config
from ..security import abort_connection, origin_matches

router = APIRouter(tags=["live"])

CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


def origin_allowed(ws: WebSocket, extra: list[str]) -> bool:
    """Same origin (scheme and host:port) or an allow-listed origin; no Origin
    header means a non-browser client, which CORS-style checks do not cover anyway."""
    return origin_matches(ws.scope, ws.headers.get("origin"), extra)


# a stopped run that has not ended by then (its network still being built) is answered
# with what the store holds at that moment
STOPPED_WITHIN_S = 600.0

class LiveSession:
    def __init__(self, ws: WebSocket, manager: RunManager):
        self.ws, self.manager = ws, manager
        self.settings = manager.settings
        self.sink = FrameSink(asyncio.get_running_loop())
        self.job: Job | None = None
        self.closed = False
        self._answers: set[asyncio.Task] = set()  # 'stopped' frames still to come

    def error(self, code: str, message: str, field: str | None = None) -> None:
        self.sink.put({"type": "error", "code": code, "message": message, "field": field},
                      keep=True)

    async def run(self) -> None:
        try:  # whichever ends first (client left, client too slow) ends the session
            async with anyio.create_task_group() as tg:
                async def send_then_end() -> None:
                    await self._send_loop()
                    tg.cancel_scope.cancel()

                tg.start_soon(send_then_end)
                await self._receive_loop()
                tg.cancel_scope.cancel()
        finally:
            self.closed = True
            if self.job is not None:
                self.job.superseded = True  # a reload or a closed tab: dropped unless kept
                self.manager.cancel(self.job)
                with anyio.CancelScope(shield=True):  # wait for it to end, even if cancelled
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
                await self._flush_and_close(CLOSE_TOO_BIG, "message too big", {
                    "type": "error", "code": "too_large", "field": None,
                    "message": f"message of {len(raw)} bytes is over the limit of {limit} "
                               f"(setting BACKPROPLAB_MAX_MESSAGE_BYTES)"})
                return
            try:
                msg = strict_json(raw)
            except ValueError as exc:  # not strict JSON, or nested past codec.MAX_DEPTH
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
            paused = msg.get("paused", False)
            if not isinstance(paused, bool):  # "false" is a string, not false
                self.error("bad_message", f'"paused" is true or false, not {short(repr(paused))}',
                           "paused")
                return False
            return await self._start(msg, paused=paused)
        if kind == "ping":
            self.sink.put({"type": "pong", "t": msg.get("t")}, keep=True)
            return False
        if kind not in ("pause", "resume", "step", "stop"):
            self.error("unknown_type", f"unknown message type {short(repr(kind))}; expected start, "
                                       f"update, pause, resume, step, stop or ping", "type")
            return False
        if self.job is None or not self.job.is_alive():
            self.error("no_run", f"'{kind}' needs a running run: send 'start' first")
            return False
        if kind == "pause":
            self.job.keep = True  # the student stopped to look: the Runs list keeps it
            self.job.control.set_paused(True)
        elif kind == "resume":
            self.job.control.set_paused(False)
        elif kind == "step":
            self.job.control.add_step()
        else:
            job = self.job
            job.keep = True
            await self.manager.stop(job)
            if job.finished.is_set():
                self._stopped(job)
            else:  # still building its network (a large initialization): answered when
                # it has ended, so that `kept` is what the store then holds
                task = asyncio.create_task(self._stopped_when_ended(job))
                self._answers.add(task)
                task.add_done_callback(self._answers.discard)
        return False

    def _stopped(self, job: Job) -> None:
        # kept: in the run store (a run stopped before its first step leaves nothing)
        self.sink.put({"type": "stopped", "id": job.id, "kept": job.stored}, keep=True)

    async def _stopped_when_ended(self, job: Job) -> None:
        await asyncio.to_thread(job.finished.wait, STOPPED_WITHIN_S)
        self._stopped(job)

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
            words = plain(first["msg"])  # a check of the whole config: its words alone
            self.error("invalid_config", f"{field}: {words}" if field else words, field)
            return False
        if self.job is not None:
            self.job.superseded = True  # replaced mid-way: dropped unless kept
            await self.manager.stop(self.job)  # cancel the old run, wait for it to end
            self.sink.drop_run(self.job.id)  # the old run's frames not sent yet
        try:
            self.job = self.manager.start(cfg.to_spec(), self.sink, cfg.model_dump(),
                                          paused=paused)
        except OverBudget as exc:
            self.job = None
            self.error("too_large", str(exc))
            return False
        except Refused as exc:
            self.job = None
            # the frame says what and why, the close reason (at most 123 bytes) when
            await self._flush_and_close(CLOSE_TRY_AGAIN, f"server full; retry in "
                                                         f"{exc.retry_after:g} s", {
                "type": "error", "code": "busy", "message": str(exc), "field": None,
                "retry_after": exc.retry_after})
            return True
        return False

    async def _flush_and_close(self, code: int, reason: str, last: dict | None = None) -> None:
        """Send what waits (and `last`) from here, then close: the sender may be
        cancelled the moment the connection ends."""
        self.closed = True
        for frame in self.sink.take() + ([last] if last else []):
            await self._send(frame)
        await self.ws.close(code=code, reason=reason)

    async def _send(self, frame: dict) -> None:
        if self.sink.overflowed:
            raise TimeoutError("kept frames piled up: the client reads nothing")
        # step frames come encoded from the job's thread (a StepFrame, the store's
        # bytes); the rest are small
        text = getattr(frame, "text", None)
        if text is None:
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
        except TimeoutError:
            if not self.closed:  # a send that blocked too long: drop the slow client now,
                abort_connection(self.ws.scope)  # not behind the data it does not read
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass


@router.websocket("/api/live")
async def live(ws: WebSocket, manager: ManagerDep) -> None:
    """The live lab's stream (the protocol: README, "The live protocol", and /docs)."""
    if not origin_allowed(ws, manager.settings.allowed_origins):
        await ws.close(code=CLOSE_POLICY, reason="origin not allowed")
        return
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        await LiveSession(ws, manager).run()
