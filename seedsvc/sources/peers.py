"""The peer client: long-polls one peer DC's seedsvc for that DC's seed set (docs/design.md section 8).

``GET <peer>/seeds?scope=datacenter&wait=..&generation=..`` in a loop. Everything a peer sends is
untrusted input: time (connect and total timeouts), size (a body cap) and content (IP literals only, a
bounded count) are checked here, and any failure becomes a :class:`Failure` with a short reason, never
an exception upward and never an empty list. HTTPS always verifies the peer's certificate.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp

from seedsvc.records import Endpoint, InvalidAddress, normalize_address
from seedsvc.sources.backoff import Backoff
from seedsvc.sources.events import Failure
from seedsvc.sources.transport_failures import transport_failure

PEER_WAIT = 55.0
"""Seconds one long-poll may wait on the peer: under the 60 s idle timeout of many proxies and load
balancers a peer URL may sit behind, and still only about one request a minute per sidecar and peer."""

MAX_BODY = 16 * 1024
"""Largest answer read from a peer: 100 IPv6 addresses take about 4 KiB; anything bigger is not a
seed list and is not read to the end."""

MAX_SEEDS = 100
"""Most addresses accepted in one answer: the largest --count a peer can be configured with."""

MIN_POLL_INTERVAL = 1.0
"""An unchanged answer that comes back early (a peer replica with another generation number, a proxy
that cuts long-polls) is not asked again sooner than this, so no peer can drive a hot loop."""


class PeerError(Exception):
    """One failed poll: ``reason`` is the metric label, ``detail`` the sentence for logs and /readyz."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PeerAnswer:
    """A peer's valid answer: its DC's seeds in its order, and the generation to long-poll past."""

    seeds: tuple[str, ...]
    generation: int | None
    endpoints: tuple[Endpoint, ...] = ()
    """Only in a relay's answer (``scope=relay``): the records the caller runs select() on."""


@dataclass(frozen=True, slots=True)
class PeerView:
    """Which view of the peer is polled and how its body is read: ``parse`` returns the answer
    without its generation, or raises PeerError("bad_response")."""

    scope: str
    accept: str
    parse: Callable[[bytes], PeerAnswer]


PeerEvent = PeerAnswer | Failure


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """How to reach one peer DC; every duration in seconds."""

    name: str
    url: str
    """Base URL of the peer DC's seedsvc (``http://`` or ``https://``), without ``/seeds``."""
    ca_file: Path | None = None
    """CA bundle for HTTPS peers; None: the system CAs. Verification is never off."""
    connect_timeout: float = 5.0
    request_timeout: float = 10.0
    """Allowed beyond the long-poll wait for the answer to arrive in full."""
    backoff_max: float = 30.0
    wait: float = PEER_WAIT
    max_body: int = MAX_BODY

    @property
    def seeds_url(self) -> str:
        return self.url.rstrip("/") + "/seeds"


def parse_peer_seeds(body: bytes, *, limit: int = MAX_SEEDS) -> tuple[str, ...]:
    """A peer's text answer as addresses; PeerError("bad_response") for anything else."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise PeerError("bad_response", "answer is not ASCII text") from None
    items = [item.strip() for item in text.strip().split(",")]
    if not items or items == [""]:
        raise PeerError("bad_response", "empty seed list in a 200 answer")
    if len(items) > limit:
        raise PeerError("bad_response", f"{len(items)} addresses in one answer, more than {limit}")
    try:
        return tuple(dict.fromkeys(normalize_address(item) for item in items))
    except InvalidAddress as exc:
        raise PeerError("bad_response", str(exc)[:200]) from None


def ssl_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate and host name always verified: against ``ca_file`` if given, else the system CAs."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def parse_datacenter_answer(body: bytes) -> PeerAnswer:
    return PeerAnswer(parse_peer_seeds(body), None)


DATACENTER_VIEW = PeerView("datacenter", "text/plain", parse_datacenter_answer)
"""A peer DC's seed set, as text (docs/design.md section 8)."""


class PeerClient:
    """Long-polls one peer forever; yields a :class:`PeerAnswer` per answer, a :class:`Failure` per
    failed attempt (then waits a capped, jittered backoff)."""

    def __init__(
        self,
        config: PeerConfig,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        view: PeerView = DATACENTER_VIEW,
    ) -> None:
        self.config = config
        self.view = view
        self._backoff = Backoff(maximum=config.backoff_max, rng=rng or random.Random())
        self._sleep = sleep
        self._clock = clock
        self._ssl = ssl_context(config.ca_file) if config.url.startswith("https://") else None

    @property
    def name(self) -> str:
        return self.config.name

    async def updates(self) -> AsyncIterator[PeerEvent]:
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else True, limit=1)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            last: PeerAnswer | None = None
            etag: str | None = None
            while True:
                started = self._clock()
                try:
                    answer, etag = await self._poll(session, last, etag)
                except PeerError as exc:
                    if last is not None:
                        # The next request asks for the current list at once: a long-poll past the old
                        # generation would leave the peer stale for a whole wait after it recovers.
                        last = replace(last, generation=None)
                    delay = self._backoff.next_delay()
                    yield Failure(exc.reason, f"{self.config.seeds_url}: {exc.detail}", retry_in=delay)
                    await self._sleep(delay)
                    continue
                self._backoff.reset()
                unchanged = last is not None and (answer.seeds, answer.endpoints) == (last.seeds, last.endpoints)
                last = answer
                yield answer
                if unchanged and self._clock() - started < MIN_POLL_INTERVAL:
                    await self._sleep(MIN_POLL_INTERVAL)

    async def _poll(
        self, session: aiohttp.ClientSession, last: PeerAnswer | None, etag: str | None
    ) -> tuple[PeerAnswer, str | None]:
        config = self.config
        params = {"scope": self.view.scope}
        wait = 0.0
        if last is not None and last.generation is not None:
            # Only with a generation to wait past: without one the server would wait for the next
            # change, and a first request must learn the current list at once.
            wait = config.wait
            params |= {"wait": f"{wait:g}", "generation": str(last.generation)}
        headers = {"Accept": self.view.accept}
        if etag is not None and last is not None:
            headers["If-None-Match"] = etag
        limit = wait + config.request_timeout
        timeout = aiohttp.ClientTimeout(total=limit,
                                        connect=config.connect_timeout, sock_connect=config.connect_timeout)
        try:
            async with session.get(config.seeds_url, params=params, headers=headers, timeout=timeout,
                                   allow_redirects=False) as response:
                generation = _generation(response.headers.get("X-Seedsvc-Generation"))
                if response.status == 304 and last is not None:
                    return replace(last, generation=generation), etag
                body = await _bounded_body(response, config.max_body)
                if response.status == 200:
                    answer = replace(self.view.parse(body), generation=generation)
                    return answer, response.headers.get("ETag")
                raise PeerError(_status_reason(response.status), f"{response.status}: {_first_line(body)}")
        except PeerError:
            raise
        except (TimeoutError, ssl.SSLError, aiohttp.ClientError) as exc:
            failure = transport_failure(exc, other_side="peer")
            if failure is None:
                raise
            reason, detail = failure
            if reason == "timeout":
                detail = f"no complete answer within {limit:g} s"
            raise PeerError(reason, detail) from None


async def _bounded_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    declared = response.content_length
    if declared is not None and declared > limit:
        raise PeerError("too_large", f"answer of {declared} bytes, more than {limit}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(limit + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise PeerError("too_large", f"answer longer than {limit} bytes")
    return b"".join(chunks)


def _status_reason(status: int) -> str:
    # 503 is a peer DC that has no seed set (new, or wholly down); its last seeds stay, marked stale.
    if status == 503:
        return "unavailable"
    return "server_error" if status >= 500 else "bad_status"


def _generation(value: str | None) -> int | None:
    if value is None or not value.isdigit() or len(value) > 19:
        return None
    return int(value)


def _first_line(body: bytes) -> str:
    text = body[:200].decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else "(empty body)"
