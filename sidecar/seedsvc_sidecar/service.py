"""``seedsvc serve``: the discovery loop and the HTTP API in one process, with graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from seedsvc.discovery import Discovery
from seedsvc.federated_discovery import build_federation
from seedsvc.settings import Settings
from seedsvc.sources.factory import build_source
from seedsvc.sources.relay_publisher import RelayPublisher, RelayState, is_relay
from seedsvc.state import SeedState, StateFile, StateFileError
from seedsvc_sidecar.admission import GuardedSite, Limits
from seedsvc_sidecar.health import Health
from seedsvc_sidecar.logs import MalformedRequests, Throttle, loop_exception_handler
from seedsvc_sidecar.metrics import Metrics
from seedsvc_sidecar.serving import ADMISSION, METRICS, make_app

log = logging.getLogger("seedsvc.serve")

SHUTDOWN_GRACE = 5.0
"""Seconds in-flight requests get to finish after SIGTERM. Long-polls are answered at once on
shutdown, so this only bounds slow clients; it stays well inside Kubernetes' default 30 s grace."""


def restore_state(state: SeedState, path: Path | None) -> None:
    """Serve the state file's list (marked stale) until discovery answers; an unusable file is
    reported and ignored, since the sidecar can always start without it."""
    if path is None:
        return
    try:
        snapshot = StateFile(path).load()
    except StateFileError as exc:
        log.warning("ignoring state file: %s", exc)
        return
    if snapshot is None:
        log.info("no state file at %s yet", path)
        return
    state.restore(snapshot)
    log.info("restored %s from %s (stale until discovery answers)", ",".join(snapshot.seeds), path)


def build_app(settings: Settings) -> web.Application:
    """The whole service: state (restored from the state file), metrics, HTTP API, discovery task."""
    state = SeedState()
    restore_state(state, settings.state.file)
    metrics = Metrics(state, source=settings.discovery.source)
    health = Health()
    # A relay (no pod identity) also answers scope=relay for sidecars in relay mode.
    relay_state = RelayState() if is_relay(settings) else None
    observer = metrics if relay_state is None else RelayPublisher(metrics, relay_state, settings.selection.count)
    limits = Limits.from_settings(settings)
    if settings.federation.datacenter is not None:
        scope_state = SeedState()
        app = make_app(state=state, health=health, metrics=metrics, limits=limits, scope_state=scope_state,
                       relay_state=relay_state)
        federated = build_federation(settings, served=state, scope=scope_state, observer=observer)
        app.cleanup_ctx.append(_background("discovery", federated.run, health))
        return app
    app = make_app(state=state, health=health, metrics=metrics, limits=limits, relay_state=relay_state)
    discovery = Discovery(
        source=build_source(settings),
        policy=settings.selection,
        identity=settings.identity,
        state=state,
        observer=observer,
        state_file=StateFile(settings.state.file) if settings.state.file else None,
    )
    app.cleanup_ctx.append(_background("discovery", discovery.run, health))
    return app


def _background(
    name: str, run: Callable[[], Coroutine[Any, Any, None]], health: Health
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx entry: the task starts with the app and is cancelled (and awaited) with it."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(), name=name)
        task.add_done_callback(_report_death)
        health.watch(name, task)
        yield
        health.forget(name)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _report_death(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("%s task died; /healthz now fails", task.get_name(), exc_info=exc)
    else:
        log.error("%s task ended; /healthz now fails", task.get_name())


async def serve(settings: Settings, *, shutdown_grace: float = SHUTDOWN_GRACE) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean shutdown, 1 when the port cannot be bound."""
    # Signals are caught before anything starts, so one that arrives during start-up still gets a
    # clean shutdown instead of the default kill.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        return await _serve_until(stop, settings, shutdown_grace=shutdown_grace)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _serve_until(stop: asyncio.Event, settings: Settings, *, shutdown_grace: float) -> int:
    app = build_app(settings)
    metrics, admission = app[METRICS], app[ADMISSION]
    throttle = Throttle()
    # aiohttp's own per-connection log lines (a request it cannot parse, say) go through a logger
    # of ours, whose filter keeps what a caller can provoke to one line at a bounded rate.
    protocol_log = logging.getLogger("seedsvc.http.protocol")
    quiet = MalformedRequests(throttle, metrics.http_malformed.inc)
    protocol_log.addFilter(quiet)
    loop = asyncio.get_running_loop()
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(loop_exception_handler(throttle, metrics.http_accept_errors.inc))
    # Handlers are cancelled when their client goes away, so abandoned long-polls do not pile up.
    # aiohttp's keep-alive timer duplicates the idle clock of GuardedConnection: a second line of defence.
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=shutdown_grace,
                           handler_cancellation=True, access_log=None, logger=protocol_log,
                           keepalive_timeout=admission.limits.idle_timeout)
    await runner.setup()
    try:
        site = GuardedSite(runner, settings.http.host, settings.http.port, admission=admission)
        try:
            await site.start()
        except OSError as exc:
            log.error("cannot listen on %s port %d: %s", settings.http.host, settings.http.port, exc.strerror or exc)
            return 1
        for address in runner.addresses:
            host, port = address[0], address[1]
            shown = f"[{host}]" if ":" in host else host
            log.info("listening on http://%s:%d", shown, port)
        await stop.wait()
        log.info("stopping: answering waiting clients, then cancelling discovery")
    finally:
        # Shielded so a second signal cannot leave the site half closed.
        await asyncio.shield(runner.cleanup())
        loop.set_exception_handler(previous_handler)
        protocol_log.removeFilter(quiet)
    log.info("stopped")
    return 0
