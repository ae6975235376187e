"""The application factory, served by `uvicorn backend.main:create_app --factory`."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.api import auth, aws, errors, feature_flags, health, providers, rollback_records
from backend.core.config import Settings, get_settings
from backend.core.log import configure_logging
from backend.db.session import engine_for, session_factory
from backend.flags import FlagRuntime, FlagStoreUnavailable, current

VERSION = "0.1.0"
log = logging.getLogger("pcm_ops_tools.app")


class FlagsVersionHeader:
    """Stamp every response with the version of the flag snapshot that answered it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Read when the answer is ready, so a change's own response shows its version.
                version = str(current().version).encode()
                message["headers"] = [*message.get("headers", []), (b"x-flags-version", version)]
            await send(message)

        await self.app(scope, receive, stamped)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_file, settings.log_level)
    engine = engine_for(settings)
    sessions = session_factory(engine)
    runtime = FlagRuntime(
        sessions,
        rollback_mode=settings.rollback_mode,
        overrides=settings.flag_overrides,
        state_file=settings.state_file,
        poll_interval=settings.flag_poll_interval,
        stale_after=settings.stale_after_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            snap = runtime.refresh(force=True)
            log.info(
                "PCM-Ops Tools %s started: flags version %s, rollback mode %s, overrides %s",
                VERSION,
                snap.version,
                "ON" if runtime.rollback_mode else "off",
                runtime.overrides or "none",
            )
        except FlagStoreUnavailable as exc:
            log.error("start-up with the flag store unreachable: %s", exc)
        if runtime.rollback_mode:
            log.warning("Feature flag rollback mode is ON: every flag serves its rollback value")
        runtime.start_polling()
        try:
            yield
        finally:
            runtime.stop_polling()
            engine.dispose()
            log.info("PCM-Ops Tools stopped")

    app = FastAPI(title="PCM-Ops Tools", version=VERSION, lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.sessions = sessions
    app.state.started = time.monotonic()
    errors.install(app)
    for module in (health, feature_flags, rollback_records, providers, auth, aws):
        app.include_router(module.router)
    app.add_middleware(FlagsVersionHeader)
    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "backend.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
    )


if __name__ == "__main__":
    main()
