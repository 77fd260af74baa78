"""The HTTP API (docs/design.md section 3): an aiohttp app factory and the functions behind its handlers.

Handlers only translate HTTP into calls of the framework-neutral functions below, each of which
returns a :class:`Reply` (status, headers, body), so every answer can be tested without a server.
Bad input gets a 4xx with a one-line reason; a 5xx only ever comes from a bug, and the error
middleware turns that into a logged 500 rather than a dropped connection.

See docs/http-api.md for the contract in prose and docs/openapi.yaml for the machine-readable one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from seedsvc.seedlist import SeedList
from seedsvc.state import SeedState
from seedsvc_sidecar.admission import REFUSAL_RETRY_AFTER, Admission, GuardedConnection, Limits, is_trusted
from seedsvc_sidecar.documents import readiness_document, seeds_document, unservable_reason
from seedsvc_sidecar.health import Health
from seedsvc_sidecar.metrics import Metrics

log = logging.getLogger("seedsvc.http")

MAX_WAIT = 300.0
"""Longest long-poll, in seconds: below the idle timeouts of common proxies and load balancers
(often 350 s or more) yet long enough that an idle Cassandra node polls a few times an hour."""

RETRY_AFTER = 2
"""Seconds a client is asked to wait after a 503: discovery usually answers within a few seconds of
start-up, and the Java shim retries on its own start-up deadline anyway."""

_MAX_WAIT_EXACT = Decimal(MAX_WAIT)
MAX_GENERATION = 2**63 - 1
# Used with fullmatch: ASCII digits only (no sign, exponent, nan, blank, other scripts' digits); any
# number of them, since the range check below is exact whatever the length (the request line bounds it).
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)
_INTEGER = re.compile(r"[0-9]{1,19}")
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
SEEDS_PARAMETERS = ("format", "wait", "generation", "scope")


class Reply(NamedTuple):
    """One HTTP answer, independent of any web framework."""

    status: int
    headers: dict[str, str]
    body: bytes


class BadRequest(ValueError):
    """Invalid query input; the message is the one-line reason sent with the 400."""


@dataclass(frozen=True, slots=True)
class SeedsQuery:
    """A validated ``GET /seeds`` request: representation, and long-poll parameters if any."""

    as_json: bool = False
    wait: float = 0.0
    generation: int | None = None
    scope: str | None = None
    """``datacenter``: this DC's own seed set, what peer DCs poll (docs/design.md section 8); ``relay``: a
    relay's digest for sidecars in relay mode (docs/design.md, "Relay mode")."""


def show(value: str, limit: int = 60) -> str:
    """A client-supplied value, quoted and escaped for a one-line reason, and bounded in length."""
    shown = repr(value[:limit])
    return shown + "..." if len(value) > limit else shown


def text_reply(status: int, line: str, headers: dict[str, str] | None = None) -> Reply:
    """A plain-text one-line answer (errors, 503 reasons, ``/healthz``)."""
    # Whatever a reason contains (an exception message, a server's answer), it goes out as one line.
    body = (" ".join(line.splitlines()).strip() + "\n").encode()
    return Reply(status, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store",
                          **(headers or {})}, body)


def json_reply(status: int, document: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    body = (json.dumps(document, separators=(",", ":")) + "\n").encode()
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, body)


# --- /seeds -------------------------------------------------------------------------------------


def parse_seeds_query(params: Iterable[tuple[str, str]], accept: str | None) -> SeedsQuery:
    """Validate the query of ``GET /seeds``; BadRequest names the offending parameter and value."""
    seen: dict[str, str] = {}
    for name, value in params:
        if name not in SEEDS_PARAMETERS:
            raise BadRequest(f"unknown query parameter {show(name)}; expected {', '.join(SEEDS_PARAMETERS)}")
        if name in seen:
            raise BadRequest(f"query parameter {name} given more than once")
        seen[name] = value

    fmt = seen.get("format")
    if fmt is None:
        as_json = prefers_json(accept)
    elif fmt in ("text", "json"):
        as_json = fmt == "json"
    else:
        raise BadRequest(f"invalid format={show(fmt)}: expected text or json")

    wait = 0.0
    if "wait" in seen:
        wait = parse_wait(seen["wait"])

    generation = None
    if "generation" in seen:
        raw = seen["generation"]
        if not _INTEGER.fullmatch(raw) or int(raw) > MAX_GENERATION:
            raise BadRequest(f"invalid generation={show(raw)}: expected a non-negative integer")
        generation = int(raw)
    scope = seen.get("scope")
    if scope is not None and scope not in ("datacenter", "relay"):
        raise BadRequest(f"invalid scope={show(scope)}: expected datacenter or relay")
    return SeedsQuery(as_json=as_json, wait=wait, generation=generation, scope=scope)


def parse_wait(raw: str) -> float:
    """A long-poll duration: any finite decimal from 0 to MAX_WAIT, compared exactly (as a Decimal),
    so ``300.0000000000000001`` is refused even though it rounds to 300.0 as a float."""
    if not _DECIMAL.fullmatch(raw) or Decimal(raw) > _MAX_WAIT_EXACT:
        raise BadRequest(f"invalid wait={show(raw)}: expected seconds between 0 and {MAX_WAIT:g}")
    return float(raw)


def prefers_json(accept: str | None) -> bool:
    """Content negotiation between text/plain (the default) and application/json, by q-value.

    JSON only when the client rates it strictly higher than text; anything unparsable or matching
    neither falls back to text, the representation every client of this API understands.
    """
    if not accept:
        return False
    best: dict[str, tuple[int, float]] = {}  # media type -> (specificity of the matching range, q)
    for media_range in accept.split(","):
        kind, *params = (part.strip() for part in media_range.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:  # also nan
                    quality = 0.0
        kind = kind.lower()
        for media in ("text/plain", "application/json"):
            major = media.split("/")[0]
            specificity = 2 if kind == media else 1 if kind == f"{major}/*" else 0 if kind == "*/*" else -1
            if specificity >= 0 and specificity > best.get(media, (-1, 0.0))[0]:
                best[media] = (specificity, quality)
    return best.get("application/json", (0, 0.0))[1] > best.get("text/plain", (0, 0.0))[1]


def seeds_reply(snapshot: SeedList, *, as_json: bool, if_none_match: str | None = None) -> Reply:
    """The answer to ``GET /seeds`` for one snapshot: 200, 304 or 503, never an empty 200."""
    headers = {
        "X-Seedsvc-Generation": str(snapshot.generation),
        "X-Seedsvc-Stale": "true" if snapshot.stale else "false",
        "Cache-Control": "no-cache",
        "Vary": "Accept",
    }
    if not snapshot.servable:
        return text_reply(503, unservable_reason(snapshot), {**headers, "Cache-Control": "no-store",
                                                             "Retry-After": str(RETRY_AFTER)})
    if as_json:
        reply = json_reply(200, seeds_document(snapshot), headers)
        etag = entity_tag("json", reply.body)
    else:
        reply = Reply(200, {"Content-Type": "text/plain; charset=utf-8", **headers},
                      ",".join(snapshot.seeds).encode())
        # From the list alone: equal lists have equal ETags, across restarts and across replicas.
        etag = entity_tag("text", reply.body)
    reply.headers["ETag"] = etag
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Reply(304, {k: v for k, v in reply.headers.items() if k != "Content-Type"}, b"")
    return reply


def entity_tag(kind: str, body: bytes) -> str:
    """A strong ETag from the representation's bytes; ``kind`` keeps text and JSON tags apart."""
    digest = hashlib.sha256(kind.encode() + b"\0" + body).hexdigest()[:32]
    return f'"{kind[0]}{digest}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 section 13.1.2): ``W/`` is ignored."""
    if if_none_match.strip() == "*":
        return True
    return etag in _ENTITY_TAG.findall(if_none_match)


def will_wait(snapshot: SeedList, query: SeedsQuery) -> bool:
    """Whether a request is a long-poll that waits, rather than one answerable at once."""
    return query.wait > 0 and query.generation in (None, snapshot.generation)


def too_many_long_polls_reply(cap: int) -> Reply:
    return text_reply(503, f"too many waiting long-polls ({cap}); retry later, or ask without wait",
                      {"Retry-After": str(REFUSAL_RETRY_AFTER)})


async def next_snapshot(state: SeedState, query: SeedsQuery, stopping: asyncio.Event) -> SeedList:
    """The snapshot a (long-poll) request is answered with.

    Waits while the generation equals the one the client has (by default the current one), up to
    ``query.wait`` seconds. A client that is ahead (the sidecar restarted without a state file) is
    answered at once, so it learns the new numbering instead of waiting for it to catch up. Shutdown
    (``stopping``) answers every waiter with the current list.
    """
    current = state.snapshot
    generation = current.generation if query.generation is None else query.generation
    if not will_wait(current, query) or stopping.is_set():
        return current
    waiter = asyncio.ensure_future(state.wait_past(generation, query.wait))
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stop.cancel()
        await asyncio.wait({waiter, stop})
    return state.snapshot


# --- probes and metrics ---------------------------------------------------------------------------


def healthz_reply(health: Health) -> Reply:
    problem = health.problem()
    return text_reply(200, "ok") if problem is None else text_reply(503, problem)


def readyz_reply(snapshot: SeedList) -> Reply:
    return json_reply(200 if snapshot.servable else 503, readiness_document(snapshot),
                      {"Cache-Control": "no-store"})


def metrics_reply(metrics: Metrics, accept: str | None) -> Reply:
    encoder, content_type = choose_encoder(accept or "")
    return Reply(200, {"Content-Type": content_type, "Cache-Control": "no-store"}, encoder(metrics.registry))


def not_found_reply(path: str) -> Reply:
    return text_reply(404, f"no such path: {show(path)}; try /seeds, /healthz, /readyz or /metrics")


def method_not_allowed_reply(method: str, path: str, allowed: Iterable[str]) -> Reply:
    allow = ", ".join(sorted(allowed))
    return text_reply(405, f"method {show(method)} not allowed on {show(path)}; allowed: {allow}",
                      {"Allow": allow})


# --- aiohttp ------------------------------------------------------------------------------------

STATE = web.AppKey("state", SeedState)
SCOPE_STATE = web.AppKey("scope_state", SeedState)
RELAY_STATE = web.AppKey("relay_state", SeedState)
HEALTH = web.AppKey("health", Health)
METRICS = web.AppKey("metrics", Metrics)
STOPPING = web.AppKey("stopping", asyncio.Event)
ADMISSION = web.AppKey("admission", Admission)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    *, state: SeedState, health: Health, metrics: Metrics, limits: Limits | None = None,
    scope_state: SeedState | None = None, relay_state: SeedState | None = None,
) -> web.Application:
    """The HTTP API over ``state``; ``metrics`` supplies the registry and records request latency.
    ``scope_state`` (several DCs) answers ``/seeds?scope=datacenter``, ``relay_state`` (a relay)
    ``/seeds?scope=relay``.

    ``limits`` caps long-polls here; the connection caps and timeouts need the app served through
    :class:`~seedsvc_sidecar.admission.GuardedSite` with ``app[ADMISSION]``. Long-lived tasks
    (discovery) are the caller's: add them to ``app.cleanup_ctx``.
    """
    app = web.Application(middlewares=[_track, _measure, _errors])
    app[ADMISSION] = Admission(limits or Limits.defaults(), metrics)
    app[STATE] = state
    if scope_state is not None:
        app[SCOPE_STATE] = scope_state
    if relay_state is not None:
        app[RELAY_STATE] = relay_state
    app[HEALTH] = health
    app[METRICS] = metrics
    app[STOPPING] = asyncio.Event()
    app.on_shutdown.append(_wake_waiters)
    app.router.add_get("/seeds", _seeds)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


def respond(reply: Reply) -> web.Response:
    return web.Response(status=reply.status, headers=reply.headers, body=reply.body)


async def _seeds(request: web.Request) -> web.StreamResponse:
    try:
        query = parse_seeds_query(request.query.items(), _joined(request, "Accept"))
    except BadRequest as exc:
        return respond(text_reply(400, str(exc)))
    state, admission = request.app[STATE], request.app[ADMISSION]
    if query.scope == "datacenter":
        if SCOPE_STATE not in request.app:
            return respond(text_reply(400, "scope=datacenter needs SEEDSVC_DATACENTER (--datacenter) on this sidecar"))
        state = request.app[SCOPE_STATE]
    elif query.scope == "relay":
        if RELAY_STATE not in request.app:
            return respond(text_reply(400, "scope=relay is answered by relays only (no POD_NAME or POD_IP)"))
        state = request.app[RELAY_STATE]
    if not will_wait(state.snapshot, query):
        snapshot = state.snapshot
    else:
        trusted = _trusted(request)
        if not admission.begin_long_poll(trusted):
            return respond(too_many_long_polls_reply(admission.limits.max_long_polls))
        try:
            snapshot = await next_snapshot(state, query, request.app[STOPPING])
        finally:
            admission.end_long_poll(trusted)
    return respond(seeds_reply(snapshot, as_json=query.as_json, if_none_match=_joined(request, "If-None-Match")))


def _connection(request: web.Request) -> GuardedConnection | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, GuardedConnection) else None


def _trusted(request: web.Request) -> bool:
    """The connection's verdict when served through GuardedSite; else judged from the peer address."""
    connection = _connection(request)
    if connection is not None:
        return connection.trusted
    transport = request.transport
    peername = transport.get_extra_info("peername") if transport is not None else None
    return is_trusted(peername, request.app[ADMISSION].limits.trusted)


def _joined(request: web.Request, name: str) -> str | None:
    """A list-valued header sent as several fields is one comma-separated list (RFC 9110 5.3)."""
    values = request.headers.getall(name, [])
    return ", ".join(values) if values else None


async def _healthz(request: web.Request) -> web.StreamResponse:
    return respond(healthz_reply(request.app[HEALTH]))


async def _readyz(request: web.Request) -> web.StreamResponse:
    return respond(readyz_reply(request.app[STATE].snapshot))


async def _metrics(request: web.Request) -> web.StreamResponse:
    return respond(metrics_reply(request.app[METRICS], request.headers.get("Accept")))


async def _wake_waiters(app: web.Application) -> None:
    app[STOPPING].set()


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Routing errors as one-line text; an unexpected exception as a logged 500, never a reset."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return respond(not_found_reply(request.path))
    except web.HTTPMethodNotAllowed as exc:
        return respond(method_not_allowed_reply(request.method, request.path, exc.allowed_methods))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return respond(text_reply(exc.status, exc.reason, {"Allow": exc.headers["Allow"]}
                                  if "Allow" in exc.headers else None))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, show(request.path))
        return respond(text_reply(500, "internal error; see the sidecar log"))


@web.middleware
async def _track(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection a request is in progress, so its header and idle clocks stop meanwhile."""
    connection = _connection(request)
    if connection is None:
        return await handler(request)
    connection.request_started()
    try:
        return await handler(request)
    finally:
        connection.request_finished()


@web.middleware
async def _measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request latency by route template (never the raw path, to bound label cardinality)."""
    started = time.perf_counter()
    response = await handler(request)  # _errors, inside, always returns a response
    elapsed = time.perf_counter() - started
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    method = request.method if request.method in _KNOWN_METHODS else "other"
    request.app[METRICS].request(route=route, method=method, code=response.status, seconds=elapsed)
    log.debug("%s %s -> %d in %.3fs", method, show(request.path, 200), response.status, elapsed)
    return response
