"""Pure-ASGI middleware: security headers, a bound on request bodies, same-origin
checks for the API, connection limits (HTTP and WebSocket counted apart), and a
handle on each WebSocket's transport so a client that reads nothing can be cut off."""

from __future__ import annotations

import contextlib
import hmac
import socket
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
ABORT_KEY = "backproplab.abort"
WS_SEND_BUFFER = 64 * 1024  # kernel send buffer of a WebSocket: a stalled reader shows soon


def origin_matches(scope: Scope, origin: str | None, extra: list[str]) -> bool:
    """An Origin header names this server (scheme, host and port) or an allowed
    origin. No header: not a browser's cross-site request."""
    if origin is None or origin in extra:
        return True
    parts = urlsplit(origin)
    scheme = {"ws": "http", "wss": "https"}.get(scope.get("scheme", "http"),
                                                 scope.get("scheme", "http"))
    host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
    return parts.scheme == scheme and parts.netloc == host


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _respond(send: Send, status: int, detail: str, extra: list | None = None) -> None:
    await _respond_json(send, status, {"detail": detail}, extra)


async def _respond_json(send: Send, status: int, content: dict,
                        extra: list | None = None) -> None:
    import orjson

    body = orjson.dumps(content)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())] + (extra or [])})
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in HEADERS if k not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SameOrigin:
    """403 for an API request another site's page made: `Sec-Fetch-Site` says so
    where browsers send it, `Origin` (scheme included) elsewhere. A cross-site
    `<img>` or form can thus not start computation, while the page's own requests
    and non-browser clients (no such headers) pass."""

    def __init__(self, app: ASGIApp, extra: list[str]):
        self.app, self.extra = app, extra

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            site = _header(scope, b"sec-fetch-site")
            origin = _header(scope, b"origin")
            cross = site in ("cross-site", "same-site") and origin not in self.extra
            if cross or not origin_matches(scope, origin, self.extra):
                await _respond(send, 403, "cross-site request refused: the API answers "
                                          "this server's own pages only")
                return
        await self.app(scope, receive, send)


class ConnectionLimits:
    """HTTP requests in progress and open WebSockets, counted apart (an idle
    WebSocket never makes a page's requests fail). Over a limit: 503 with
    Retry-After, or a WebSocket refused with close code 1013."""

    def __init__(self, app: ASGIApp, max_http: int, max_ws: int):
        self.app, self.max_http, self.max_ws = app, max_http, max_ws
        self.http = 0
        self.ws = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if self.http >= self.max_http:
                await _respond(send, 503, f"the server is answering {self.http} requests, "
                                          f"its limit (setting BACKPROPLAB_MAX_CONNECTIONS); "
                                          f"retry in 1 s", [(b"retry-after", b"1")])
                return
            self.http += 1
            try:
                await self.app(scope, receive, send)
            finally:
                self.http -= 1
        elif kind == "websocket":
            if self.ws >= self.max_ws:
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1013,
                            "reason": "too many connections; retry in 5 s"})
                return
            self.ws += 1
            _keep_transport(scope, send)
            try:
                await self.app(scope, receive, send)
            finally:
                self.ws -= 1
        else:
            await self.app(scope, receive, send)


def _keep_transport(scope: Scope, send: Send) -> None:
    """The server's `send` is a bound method of its connection protocol (uvicorn's
    websockets and wsproto implementations alike): keep its transport's abort, and
    make the kernel's send buffer small so a stalled reader blocks our sends soon."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return
    scope[ABORT_KEY] = transport.abort
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SEND_BUFFER)


def abort_connection(scope: Scope) -> bool:
    """Close the TCP connection now, dropping unsent data. False: not available."""
    abort = scope.get(ABORT_KEY)
    if abort is None:
        return False
    abort()
    return True


LARGE_BODY_PATHS = ("/api/runs/import", "/api/report")  # uploaded run records
WATCH_PATHS = "/api/watch/"  # steps a watched model pushes (any size of model)
SMALL_BODY_BYTES = 256 * 1024  # every other body is a config: parsed on the loop, so small


class PushSecret:
    """403 for a push to the watched runs (any POST under /api/watch/) without the
    server's secret, answered from the headers before the body is read: a stranger's
    large body costs the server nothing (the route checks the secret again)."""

    def __init__(self, app: ASGIApp, secret: str, header: str, refused: str):
        self.app, self.secret, self.refused = app, secret.encode(), refused
        self.header = header.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" \
                and scope["path"].startswith(WATCH_PATHS):
            given = next((v for k, v in scope.get("headers", []) if k == self.header), b"")
            if not hmac.compare_digest(given, self.secret):
                await _respond(send, 403, self.refused)
                return
        await self.app(scope, receive, send)


class StrictJSONBodies:
    """422 for a JSON body that is not strict RFC 8259 JSON (bare NaN, Infinity, numbers
    beyond the float range such as 1e400): the same rule as the WebSocket's and the
    import's parser on every entry point. Bodies here are configs (small: BodyLimit);
    uploaded records and watched steps are parsed strictly where they are read."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        content_type = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if scope["type"] != "http" or not path.startswith("/api/") \
                or path in LARGE_BODY_PATHS or path.startswith(WATCH_PATHS) \
                or not (content_type == "application/json" or content_type.endswith("+json")):
            await self.app(scope, receive, send)
            return
        import orjson

        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            from ..runs.codec import check_depth

            try:
                check_depth(orjson.loads(body))
            except ValueError as exc:  # not strict JSON, or nested past codec.MAX_DEPTH
                await _respond_json(send, 422, {"detail": json_invalid(exc)})
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def json_invalid(exc: ValueError) -> list[dict]:
    """The 422 detail of a body that is not strict JSON (an orjson.JSONDecodeError:
    where, and why) or nests too deep (codec.TooDeep: why)."""
    if hasattr(exc, "pos"):
        return [{"loc": ["body", exc.pos], "msg": f"JSON decode error: {exc.msg}",
                 "type": "json_invalid"}]
    return [{"loc": ["body"], "msg": str(exc), "type": "json_invalid"}]


class BodyLimit:
    """413 for a request body over the limit, by Content-Length or as it streams:
    the configured limit for uploaded records, SMALL_BODY_BYTES for the rest."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_records = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        large = scope["path"] in LARGE_BODY_PATHS or scope["path"].startswith(WATCH_PATHS)
        limit = self.max_records if large else min(self.max_records, SMALL_BODY_BYTES)
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._too_large(send, limit)
            return
        seen = 0
        refused = False

        async def limited() -> Message:
            # a chunked body past the limit: answer 413 here, then tell the app the
            # client has gone, so it stops reading and its own answer is dropped
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    refused = True
                    await self._too_large(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not refused:  # after a 413 the app's complaint about the body is moot
                raise

    async def _too_large(self, send: Send, limit: int) -> None:
        setting = "the setting BACKPROPLAB_MAX_BODY_BYTES" if limit == self.max_records else \
            "run records may be larger, on /api/runs/import and /api/report"
        await _respond(send, 413, f"request body too large: the limit is {limit} bytes "
                                  f"({setting})")
