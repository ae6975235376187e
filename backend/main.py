"""The application factory, served by
`uvicorn backend.main:create_app --factory --no-proxy-headers` (see `pcm-ops server start`)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from backend import web
from backend.api import (
    auth,
    aws,
    aws_credentials,
    errors,
    feature_flags,
    health,
    limits,
    methods,
    metrics,
    ofrep,
    prometheus,
    providers,
    rollback_records,
    tokens,
    users,
)
from backend.core.config import Settings, get_settings
from backend.core.filemodes import restrict_umask, tighten_private_dirs
from backend.core.log import configure_logging
from backend.core.logfiles import Rotation
from backend.db.checkpoint import WalCheckpointer
from backend.db.outage import PendingInit, unreachable
from backend.db.primary import boot_values, enable_refusals, ensure_primary, log_switch
from backend.db.session import engine_for, session_factory
from backend.flags import FlagRuntime, FlagStoreUnavailable, current
from backend.metrics import MetricsRecorder, RequestMetricsMiddleware, multiproc
from backend.metrics.prometheus import PrometheusExport
from backend.security.audit_keys import anchor_sessions
from backend.security.headers import SecurityHeaders
from backend.security.keys import KeyRing
from backend.security.sessions import SessionStore
from backend.security.throttle import Throttle

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
    restrict_umask()  # data/ and logs/ are owner-only, the files SQLite creates included
    configure_logging(settings.log_file, settings.log_level, Rotation.of(settings))
    tighten_private_dirs(settings)
    # Weak or well-known keys stop start-up here (WeakSecretKey), whatever the flag's state.
    keyring = KeyRing.build(
        secret_key=settings.secret_key,
        fallbacks=settings.fallback_keys,
        legacy_key=settings.legacy_secret_key,
        key_file=settings.secret_key_file,
    )
    if not settings.primary_checked:
        # Before the engine: a switch of the primary database moves the data first. Decided
        # once for a server's workers by whoever started them (see `pcm-ops server start`).
        log_switch(ensure_primary(settings))
    engine = engine_for(settings)
    sessions = session_factory(engine)
    # New audit events are chained with the audit key, and each change's head checkpointed.
    anchor_sessions(sessions, settings)
    recorder = MetricsRecorder(sessions)
    checkpointer = WalCheckpointer.for_engine(engine)
    runtime = FlagRuntime(
        sessions,
        rollback_mode=settings.rollback_mode,
        overrides=settings.flag_overrides,
        state_file=settings.state_file,
        poll_interval=settings.flag_poll_interval,
        stale_after=settings.stale_after_seconds,
        boot_values=boot_values(settings),
        enable_refusals=enable_refusals(settings),
    )
    pending_init = PendingInit(settings, engine)
    exporter = PrometheusExport(runtime, sessions)

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
            if unreachable(exc.__cause__):
                # Whether the schema is current cannot be known: init_db runs once it answers.
                pending_init.start()
        if settings.database_init_pending and not pending_init.pending:
            pending_init.start()  # `pcm-ops server start` could not run init_db
        if pending_init.pending:
            served = current()
            log.warning(
                "Migrations pending: init_db runs once the database answers (serving %s"
                " version %s)",
                "last-known flag state" if served.from_last_known_state else "flags",
                served.version,
            )
        if runtime.rollback_mode:
            log.warning("Feature flag rollback mode is ON: every flag serves its rollback value")
        runtime.start_polling()
        recorder.start()
        if checkpointer is not None:
            checkpointer.start()
        try:
            yield
        finally:
            pending_init.stop()
            runtime.stop_polling()
            # The next start decides the primary database from this file: keep it current.
            runtime.offline.save_state()
            recorder.stop()
            exporter.close()
            if checkpointer is not None:
                checkpointer.stop()
            engine.dispose()
            log.info("PCM-Ops Tools stopped")

    # The documentation is served by backend.web.api_docs: signed-in, offline, strict CSP.
    app = FastAPI(
        title="PCM-Ops Tools",
        version=VERSION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.metrics = recorder
    app.state.prometheus = exporter
    app.state.sessions = sessions
    app.state.pending_init = pending_init
    app.state.started = time.monotonic()
    app.state.keyring = keyring
    app.state.session_store = SessionStore(
        sessions,
        idle_timeout=settings.session_idle_timeout,
        absolute_timeout=settings.session_absolute_timeout,
    )
    app.state.throttle = Throttle(
        max_failures=settings.login_max_failures,
        max_failures_per_address=settings.login_max_failures_per_address,
        max_delay=settings.login_max_delay,
    )
    errors.install(app)
    app.add_exception_handler(405, methods.method_not_allowed)
    for module in (health, feature_flags, rollback_records, providers, auth, aws, metrics):
        app.include_router(module.router)
    for module in (users, tokens, aws_credentials, ofrep, prometheus):
        app.include_router(module.router)
    web.install(app)
    # Innermost first: a 500 made by RequestContext still gets the headers of the other two.
    app.add_middleware(
        limits.BodyLimits, max_bytes=settings.max_body_bytes, max_depth=settings.max_json_depth
    )
    app.add_middleware(errors.RequestContext)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(FlagsVersionHeader)
    app.add_middleware(RequestMetricsMiddleware, recorder=recorder, http=exporter.http)
    if settings.trusted_proxy_list:
        # Outermost: every layer sees the client the trusted proxy names. Servers launch
        # with uvicorn's own proxy handling off, so this is the only place it happens.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)
    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    # Once, before the workers: they then find the primary database decided.
    restrict_umask()
    configure_logging(settings.log_file, settings.log_level, Rotation.of(settings))
    log_switch(ensure_primary(settings))
    os.environ["PCM_PRIMARY_CHECKED"] = "1"
    get_settings.cache_clear()  # one worker serves in this process: it reads the flag above
    # The workers (imported afresh) count in multiprocess mode; with one worker this process
    # serves, and its prometheus_client, imported already, counts in memory.
    multiproc.prepare(settings.metrics_dir)
    os.environ[multiproc.ENV] = str(settings.metrics_dir)
    uvicorn.run(
        "backend.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        # X-Forwarded-* are believed only from PCM_TRUSTED_PROXIES, by create_app.
        proxy_headers=False,
        access_log=False,
    )


if __name__ == "__main__":
    main()
