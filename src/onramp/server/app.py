"""The app factory (STYLE habit 10): one FastAPI app per ``Settings``, no module-level state.

It serves the ID-sync pixel (``/ibs…``, SPEC §2.1) and the REST API
(``onramp.server.api.router``). ``run_http`` runs it on uvicorn with one worker: the
ID-sync log has one writer per data directory (``server.synclog``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from onramp.formats.idsync_request import tcf_storage_consent
from onramp.server.idsync import GIF, ConsentEvaluator, IdSync, UuidFactory, is_pixel_path, new_platform_uuid
from onramp.service.clock import Clock, system_clock
from onramp.settings import Settings

BASELINE_PATH = "/_bare"


class OnrampApp(FastAPI):
    """FastAPI with the pixel dispatched before the middleware stack and the router.

    The pixel is the hottest path (DESIGN §5); FastAPI's middleware and routing layers cost
    about as much per call as the pixel's own work (ADR 0002), and it needs none of them:
    it catches its own errors and parses its own raw path (``server.idsync``).
    """

    pixel: IdSync
    baseline: bool = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if is_pixel_path(path):
                return await self.pixel(scope, receive, send)
            if self.baseline and path == BASELINE_PATH:
                return await _bare(scope, receive, send)
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Clock = system_clock,
    new_uuid: UuidFactory = new_platform_uuid,
    consent: ConsentEvaluator = tcf_storage_consent,
    store_lock: threading.Lock | None = None,
    baseline_route: bool = False,
) -> OnrampApp:
    """Build the HTTP app of one installation.

    ``clock``, ``new_uuid`` and ``consent`` are injected for tests (STYLE habit 13).
    ``store_lock``: when jobs run in the same process (`onramp serve`), a lock they hold while
    their transaction is open; the ID-sync loader then skips a cycle instead of competing
    with a job for the same rows (the job loads the log itself anyway), and an API
    reprocess (itself a job) waits for it.
    ``baseline_route`` adds ``GET /_bare``, a 200 with the pixel's GIF and no work, which the
    benchmark measures as the server's own ceiling (bench/run_idsync.py).
    """
    from onramp.server.api import router as api_router

    idsync = IdSync(settings, clock=clock, new_uuid=new_uuid, consent=consent, store_lock=store_lock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with idsync.lifespan():
            yield

    app = OnrampApp(title="Onramp", summary="Batch audience data onboarding: REST API.", lifespan=lifespan)
    app.pixel = idsync
    app.baseline = baseline_route
    app.state.settings = settings
    app.state.idsync = idsync
    app.state.store_lock = store_lock  # POST /files/reprocess runs a job: it takes its turn too
    app.include_router(api_router)
    return app


async def _bare(scope: Scope, receive: Receive, send: Send) -> None:
    """A 200 with the pixel's GIF and headers, without any of its work: the baseline."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"image/gif"), (b"content-length", str(len(GIF)).encode()),
                            (b"cache-control", b"no-store, max-age=0")]})
    await send({"type": "http.response.body", "body": GIF})


def run_http(settings: Settings, **app_options: object) -> None:
    """Serve ``create_app(settings)`` on ``http.host:http.port`` until interrupted.

    One worker (the ID-sync log allows one writer); uvloop and httptools when installed.
    No access log: at thousands of pixel calls per second it would cost more than the calls.
    """
    import uvicorn

    app = create_app(settings, **app_options)  # type: ignore[arg-type]
    uvicorn.run(app, host=settings.http.host, port=settings.http.port, workers=1, access_log=False,
                log_level="warning", server_header=False, lifespan="on")
