"""Prometheus metrics of the sidecar: one :class:`Metrics` per service, each with its own registry.

Gauges that describe what is being served (list length, staleness, mode, candidates, last success)
are read from the :class:`SeedState` at scrape time, so they cannot drift from what ``/seeds``
answers, whatever path changed the state (discovery, the state file, the static fallback). Counters
are driven by the :class:`seedsvc.discovery.Observer` hooks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from seedsvc.seedlist import SeedList
from seedsvc.selection import Mode, Selection
from seedsvc.sources.events import Failure, Restart, View
from seedsvc.state import SeedState

if TYPE_CHECKING:
    from seedsvc_sidecar.admission import Admission

# Long-polls last up to the longest allowed wait (300 s), probes and plain GETs a millisecond.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_LABEL_JUNK = re.compile(r"[^a-z0-9_.-]+")


def label_value(text: str) -> str:
    """Reasons come from sources as short stable words; bound them anyway, so a source that puts a
    message in ``reason`` cannot blow up the label set."""
    return _LABEL_JUNK.sub("_", text.lower())[:40] or "unknown"


class _StateCollector(Collector):
    def __init__(self, state: SeedState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        snapshot = self._state.snapshot
        yield GaugeMetricFamily("seedsvc_seeds", "Number of addresses in the served seed list.",
                                value=len(snapshot.seeds))
        yield GaugeMetricFamily(
            "seedsvc_stale", "1 while the served list is the last known one and discovery is failing.",
            value=1 if snapshot.stale else 0,
        )
        yield GaugeMetricFamily("seedsvc_generation", "Generation of the served seed list.",
                                value=snapshot.generation)
        last = snapshot.last_success
        yield GaugeMetricFamily(
            "seedsvc_last_success_timestamp_seconds",
            "Unix time of the last successful discovery round; 0 before the first.",
            value=last.timestamp() if last else 0,
        )
        modes = GaugeMetricFamily("seedsvc_selection_mode", "1 for the mode the served list came from.",
                                  labels=["mode"])
        for mode in Mode:
            modes.add_metric([str(mode)], 1 if snapshot.mode is mode else 0)
        yield modes
        counts = {"eligible": 0, "unready": 0, "terminating": 0}
        for candidate in snapshot.candidates:
            endpoint = candidate.endpoint
            key = "terminating" if endpoint.terminating else "eligible" if endpoint.ready else "unready"
            counts[key] += 1
        candidates = GaugeMetricFamily(
            "seedsvc_candidates", "Candidate endpoints in the last view, by state.", labels=["state"]
        )
        for key, value in counts.items():
            candidates.add_metric([key], value)
        yield candidates
        if snapshot.datacenter is not None:
            yield from _peer_gauges(snapshot)


def _peer_gauges(snapshot: SeedList) -> Iterator[Metric]:
    peers = [dc for dc in snapshot.datacenters if not dc.own]
    seeds = GaugeMetricFamily("seedsvc_peer_seeds", "Seeds known of each peer datacenter (stale ones included).",
                              labels=["datacenter"])
    stale = GaugeMetricFamily("seedsvc_peer_stale", "1 while a peer datacenter is failing and its last seeds are used.",
                              labels=["datacenter"])
    for dc in peers:
        seeds.add_metric([dc.name], len(dc.seeds))
        stale.add_metric([dc.name], 1 if dc.stale else 0)
    yield seeds
    yield stale


class _HttpCollector(Collector):
    """Open connections and waiting long-polls, read from the admission counts at scrape time."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission

    def collect(self) -> Iterator[Metric]:
        for name, counts, text in (
            ("seedsvc_http_connections", self._admission.connections, "Open HTTP connections, by caller."),
            ("seedsvc_http_long_polls", self._admission.long_polls, "Waiting long-polls, by caller."),
        ):
            family = GaugeMetricFamily(name, text, labels=["caller"])
            for trusted in (True, False):
                family.add_metric(["trusted" if trusted else "untrusted"], counts[trusted])
            yield family
        yield GaugeMetricFamily("seedsvc_http_max_connections",
                                "Open connections allowed to untrusted callers (after the fd-limit clamp).",
                                value=self._admission.max_connections)


class Metrics:
    """The sidecar's metrics and their registry; also the discovery loop's observer.

    ``source`` pre-creates that source's per-source series at 0, so ``rate()`` works from the start.
    """

    def __init__(self, state: SeedState, *, source: str | None = None) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(_StateCollector(state))
        self.seed_changes = Counter(
            "seedsvc_seed_changes_total", "Times the served seed list changed.", registry=self.registry
        )
        self.discovery_errors = Counter(
            "seedsvc_discovery_errors_total", "Failed discovery attempts, by source and reason.",
            ["source", "reason"], registry=self.registry,
        )
        self.watch_restarts = Counter(
            "seedsvc_watch_restarts_total", "Re-established watch streams, by source and reason.",
            ["source", "reason"], registry=self.registry,
        )
        self.skipped_records = Counter(
            "seedsvc_skipped_records_total", "Records a source could not use (malformed, FQDN, bad DNS).",
            ["source"], registry=self.registry,
        )
        self.restart_fallback = Counter(
            "seedsvc_restart_fallback_total",
            "Entries into the whole-cluster-restart fallback (unready peers become candidates).",
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "seedsvc_http_request_duration_seconds", "HTTP request latency by route template, method, code.",
            ["route", "method", "code"], buckets=HTTP_BUCKETS, registry=self.registry,
        )
        # Peer DC names come from configuration (a handful), so they are safe as label values.
        self.peer_errors = Counter(
            "seedsvc_peer_errors_total", "Failed polls of peer datacenters, by datacenter and reason.",
            ["datacenter", "reason"], registry=self.registry,
        )
        self.http_refused = Counter(
            "seedsvc_http_refused_total", "Requests and connections refused at a cap (503), by cap.",
            ["reason"], registry=self.registry,
        )
        self.http_timeouts = Counter(
            "seedsvc_http_timeouts_total", "Connections closed for dawdling, by phase (header, idle).",
            ["phase"], registry=self.registry,
        )
        self.http_malformed = Counter(
            "seedsvc_http_malformed_requests_total", "Requests too malformed to parse, answered 400.",
            registry=self.registry,
        )
        self.http_accept_errors = Counter(
            "seedsvc_http_accept_errors_total", "Failed accept() calls (EMFILE and the like).", registry=self.registry,
        )
        for reason in ("connections", "long_polls"):
            self.http_refused.labels(reason=reason)
        for phase in ("header", "idle"):
            self.http_timeouts.labels(phase=phase)
        self._mode: Mode | None = None
        if source is not None:
            self.skipped_records.labels(source=label_value(source))

    def watch_http(self, admission: Admission) -> None:
        """Expose the HTTP server's connection counts (once per registry)."""
        self.registry.register(_HttpCollector(admission))

    # seedsvc.discovery.Observer: cheap, and never raising.

    def view(self, source: str, view: View) -> None:
        if view.skipped > 0:
            self.skipped_records.labels(source=label_value(source)).inc(view.skipped)

    def failure(self, source: str, failure: Failure) -> None:
        self.discovery_errors.labels(source=label_value(source), reason=label_value(failure.reason)).inc()

    def restart(self, source: str, restart: Restart) -> None:
        self.watch_restarts.labels(source=label_value(source), reason=label_value(restart.reason)).inc()

    def selected(self, selection: Selection, *, changed: bool) -> None:
        if changed:
            self.seed_changes.inc()
        if selection.mode is Mode.RESTART_FALLBACK and self._mode is not Mode.RESTART_FALLBACK:
            self.restart_fallback.inc()
        self._mode = selection.mode

    def peer_failure(self, datacenter: str, failure: Failure) -> None:
        self.peer_errors.labels(datacenter=datacenter, reason=label_value(failure.reason)).inc()

    def request(self, *, route: str, method: str, code: int, seconds: float) -> None:
        self.http_duration.labels(route=route, method=method, code=str(code)).observe(seconds)
