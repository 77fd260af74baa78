"""The relay source: a sidecar's view of its datacenter from relays, not from the API server.

A relay is ``seedsvc serve`` without a pod identity; it watches the API and answers
``GET /seeds?scope=relay`` with the digest of its selection (:mod:`seedsvc.sources.relay_digest`): a
JSON seeds document whose ``candidates`` are the few records the caller runs select() on. This source
long-polls that view with the peer client (bounded time, size and content), one relay at a time, in
the order configured, and yields each answer as a complete :class:`View`, so Discovery applies every
rule with the caller's own identity, exactly as a watching sidecar would.

Island safety: a View is yielded only from a relay that answered 200 with a fresh view. A relay that
is unreachable, answers garbage, 503 (no view, or a Service without endpoints) or a stale view is a
failed attempt; after every relay has failed once, a :class:`Failure` goes up and Discovery keeps the
last list, stale, without ever reaching rule 7 (the bootstrap pod seeds itself only on a View).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from seedsvc.records import Endpoint, InvalidAddress, parse_pod_name, seed_address
from seedsvc.settings import Settings
from seedsvc.sources.backoff import Backoff
from seedsvc.sources.checks import Check
from seedsvc.sources.events import Failure, SourceEvent, View
from seedsvc.sources.peers import PeerAnswer, PeerClient, PeerConfig, PeerError, PeerView

MAX_RECORDS = 3 * 101
"""A digest has at most three picks of ``count + 1`` records (count is at most 100)."""

MAX_RELAY_BODY = 128 * 1024
"""A relay's JSON answer: about 200 bytes a record, so 3 records (count 3) take under 1 kB; this bound
still fits MAX_RECORDS long pod names."""


def parse_relay_answer(body: bytes) -> PeerAnswer:
    """A relay's ``scope=relay`` JSON as the records to select from; PeerError for anything else."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise PeerError("bad_response", "relay answer is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("candidates"), list):
        raise PeerError("bad_response", "relay answer has no candidates list")
    if document.get("stale") is not False:
        # The relay's own watch is failing: its digest may be old, so it must not decide anything here.
        raise PeerError("stale", f"relay's own view is stale: {str(document.get('reason'))[:160]}")
    items = document["candidates"]
    if not items or len(items) > MAX_RECORDS:
        raise PeerError("bad_response", f"{len(items)} candidates, expected 1 to {MAX_RECORDS}")
    endpoints = tuple(_endpoint(item) for item in items)
    return PeerAnswer(tuple(e.address for e in endpoints), None, endpoints)


def _endpoint(item: object) -> Endpoint:
    if not isinstance(item, dict) or not isinstance(item.get("address"), str):
        raise PeerError("bad_response", "a candidate without an address")
    pod, zone = item.get("pod"), item.get("zone")
    ready, terminating = item.get("ready"), item.get("terminating")
    if not isinstance(ready, bool) or not isinstance(terminating, bool):
        raise PeerError("bad_response", "a candidate without ready/terminating flags")
    try:
        return Endpoint(
            address=seed_address(item["address"]),
            pod=None if pod is None else parse_pod_name(_text(pod)),
            zone=None if zone is None else _text(zone),
            ready=ready,
            terminating=terminating,
        )
    except (InvalidAddress, ValueError) as exc:
        raise PeerError("bad_response", f"bad candidate: {exc}"[:200]) from None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.isprintable() or len(value) > 253:
        raise ValueError("not a short printable string")
    return value


RELAY_VIEW = PeerView("relay", "application/json", parse_relay_answer)


class RelaySource:
    """Yields a :class:`View` per relay answer; fails over to the next relay at the first failure."""

    def __init__(
        self,
        urls: tuple[str, ...],
        *,
        connect_timeout: float = 5.0,
        request_timeout: float = 10.0,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not urls:
            raise ValueError("the relay source needs at least one relay URL")
        self._rng = rng or random.Random()
        self._backoff = Backoff(maximum=backoff_max, rng=self._rng)
        self._sleep = sleep
        self.configs = tuple(
            PeerConfig(url, url, connect_timeout=connect_timeout, request_timeout=request_timeout,
                       backoff_max=backoff_max, max_body=MAX_RELAY_BODY)
            for url in urls
        )

    @property
    def name(self) -> str:
        return "relay"

    async def updates(self) -> AsyncIterator[SourceEvent]:
        index = 0
        failures: list[Failure] = []
        while True:
            async for event in self._follow(self.configs[index]):
                if isinstance(event, View):
                    failures.clear()
                    self._backoff.reset()
                    yield event
                else:
                    failures.append(event)
            index = (index + 1) % len(self.configs)
            if len(failures) >= len(self.configs):
                # Every relay failed once in a row: report it (the list goes stale), then pause.
                delay = self._backoff.next_delay()
                detail = "no relay answered: " + "; ".join(f.detail for f in failures)
                yield Failure(failures[-1].reason, detail, retry_in=delay)
                failures.clear()
                await self._sleep(delay)

    async def _follow(self, config: PeerConfig) -> AsyncIterator[View | Failure]:
        """One relay until its first failure; its own retry pause is skipped (the next relay is tried)."""
        client = PeerClient(config, rng=self._rng, view=RELAY_VIEW)
        updates = client.updates()
        try:
            async for event in updates:
                if isinstance(event, PeerAnswer):
                    yield View(event.endpoints)
                else:
                    yield event
                    return
        finally:
            with contextlib.suppress(Exception):
                await updates.aclose()  # type: ignore[attr-defined]


def build_relay_source(settings: Settings) -> RelaySource:
    """Relays get the API server's connect and request bounds, and the sources' backoff cap."""
    return RelaySource(settings.relay.urls, connect_timeout=settings.kubernetes.connect_timeout,
                       request_timeout=settings.kubernetes.request_timeout,
                       backoff_max=settings.discovery.backoff_max)


async def diagnose(settings: Settings) -> list[Check]:
    """One check per relay: does it answer a fresh view now (a single request, no long-poll)?"""
    source = build_relay_source(settings)
    checks = []
    for config in source.configs:
        updates = PeerClient(config, view=RELAY_VIEW).updates()
        try:
            event = await anext(updates)
        finally:
            await updates.aclose()  # type: ignore[attr-defined]
        if isinstance(event, PeerAnswer):
            checks.append(Check(f"relay {config.url}", True, f"{len(event.endpoints)} record(s)"))
        else:
            checks.append(Check(f"relay {config.url}", False, f"{event.reason}: {event.detail}"))
    return checks
