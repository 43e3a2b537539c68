"""App assembly: settings, run manager, routers, static files, middleware."""

from __future__ import annotations

from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import FileResponse, Response

from .. import __version__
from ..runs.manager import RunManager
from ..runs.watched import WatchedRuns
from ..settings import Settings
from ..watch.secret import HEADER as SECRET_HEADER
from ..watch.secret import REFUSED as PUSH_REFUSED
from ..watch.secret import ensure_secret
from . import offload
from .live_protocol import PROTOCOL
from .measuring import Measurement
from .responses import StrictJSONResponse
from .routes import (
    compile,
    experiments,
    health,
    info,
    live,
    memory,
    runs,
    tape,
    theory,
    watch,
)
from .security import (
    BodyLimit,
    ConnectionLimits,
    PushSecret,
    SameOrigin,
    SecurityHeaders,
    StrictJSONBodies,
)


class SourceFreeStatic(StaticFiles):
    """The front end's files, never the Python package they ship in."""

    async def get_response(self, path: str, scope) -> Response:
        if path.endswith((".py", ".pyc")) or "__pycache__" in path:
            return StrictJSONResponse({"detail": "Not Found"}, status_code=404)
        return await super().get_response(path, scope)


def frontend_dir() -> Path:
    return Path(str(resources.files("backproplab.frontend")))


def plotly_js() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def swagger_ui_dir() -> Path:
    import swagger_ui_bundle

    return Path(swagger_ui_bundle.swagger_ui_path)


DESCRIPTION = f"""A live laboratory for backpropagation.

Every JSON answer is strict RFC 8259 JSON: a number that is NaN or ±∞ is the string
"NaN", "Infinity" or "-Infinity" (the schemas below say so for every such field).
Errors carry `detail`: a message in words, or for a 422 a list of {{loc, msg, type}}.

## The live protocol (`WS /api/live`)

{PROTOCOL}
The same text is in the README, section "The live protocol"."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    manager = RunManager(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        stop_measuring(wait=10)
        manager.shutdown()  # cancel every job on shutdown
        offload.shutdown()

    measurements = {"compile": Measurement("compiled-view", settings.max_request_seconds),
                    "memory": Measurement("memory-view", settings.max_request_seconds,
                                          hint="the sweep over depths 8…1000 is the same "
                                               "for every depth, so a smaller width or "
                                               "batch is what makes it faster; or try "
                                               "again when the server is less busy"),
                    "jacobian": Measurement("Jacobian-modes", settings.max_request_seconds,
                                            hint="try a smaller depth, width or input")}

    def stop_measuring(wait: float = 0.0) -> None:
        """First thing when the server stops (the signal handler calls it): measurements
        end at their next check, and their clients get a 503 in words."""
        for measurement in measurements.values():
            measurement.stop(wait)

    app = FastAPI(title="backproplab", version=__version__, lifespan=lifespan,
                  default_response_class=StrictJSONResponse, docs_url=None, redoc_url=None,
                  description=DESCRIPTION)
    # the bundled Swagger UI (4.x, offline) reads OpenAPI 3.0 documents
    app.openapi_version = "3.0.3"
    app.state.settings = settings
    app.state.manager = manager
    app.state.measurements = measurements
    app.state.stop_measuring = stop_measuring
    # pushed by watch(), kept in the run store; one watched run may take a quarter of it
    app.state.watched = WatchedRuns(manager.store, max_runs=settings.max_watched_runs,
                                    max_run_bytes=settings.max_store_bytes // 4)
    app.state.watch_secret = ensure_secret()  # created at start if missing (0600)
    for module in (health, info, runs, theory, tape, compile, memory, live, watch,
                   experiments):
        app.include_router(module.router)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        # the path of each bad field and why; never the (possibly huge) input echoed back
        return StrictJSONResponse({"detail": offload.error_list(exc.errors())},
                                  status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return StrictJSONResponse({"detail": f"internal error ({type(exc).__name__})"},
                                  status_code=500)

    static = frontend_dir()

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(static / "index.html", headers={"cache-control": "no-cache"})

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_bundle() -> FileResponse:
        """plotly.js from the installed plotly Python package: no CDN, works offline."""
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={"cache-control": "public, max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        """Swagger UI from the installed swagger-ui-bundle package: works offline."""
        return FileResponse(static / "docs.html")

    app.mount("/vendor/swagger", StaticFiles(directory=swagger_ui_dir()), name="swagger")
    app.mount("/static", SourceFreeStatic(directory=static), name="static")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(StrictJSONBodies)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(PushSecret, secret=app.state.watch_secret, header=SECRET_HEADER,
                       refused=PUSH_REFUSED)
    app.add_middleware(SameOrigin, extra=settings.allowed_origins)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    # outermost: it sees the server's own `send` (the WebSocket's transport)
    app.add_middleware(ConnectionLimits, max_http=settings.max_connections,
                       max_ws=settings.max_websockets)
    return app
