"""seedsvc_sidecar.metrics.Metrics: the discovery observer and scrape-time gauges, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import generate_latest
from seedsvc_sidecar.metrics import Metrics, label_value

from seedsvc.discovery import Observer
from seedsvc.records import Endpoint, Identity
from seedsvc.seedlist import SeedList
from seedsvc.selection import Memory, Mode, Policy, Selection, select
from seedsvc.sources.events import Failure, Restart, View
from seedsvc.state import SeedState


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    result = metrics.registry.get_sample_value(name, labels)
    return None if result is None else float(result)


def selection(mode: Mode, served: tuple[str, ...] = ("10.0.0.1",)) -> Selection:
    return Selection(served, served, mode, "", (), Memory())


def test_metrics_is_an_observer_and_registries_are_independent() -> None:
    one, two = Metrics(SeedState()), Metrics(SeedState())
    observer: Observer = one
    observer.failure("dns", Failure("servfail", "SERVFAIL from 10.96.0.10"))
    assert value(one, "seedsvc_discovery_errors_total", source="dns", reason="servfail") == 1
    assert value(two, "seedsvc_discovery_errors_total", source="dns", reason="servfail") is None


def test_gauges_follow_the_state_whatever_changed_it() -> None:
    state = SeedState()
    metrics = Metrics(state)
    assert value(metrics, "seedsvc_seeds") == 0
    assert value(metrics, "seedsvc_stale") == 0
    # The state file path never goes through the observer; the gauges still see it.
    state.restore(SeedList(seeds=("10.0.0.1", "10.0.0.2"), generation=3, mode=Mode.DISCOVERED))
    assert value(metrics, "seedsvc_seeds") == 2
    assert value(metrics, "seedsvc_stale") == 1
    assert value(metrics, "seedsvc_selection_mode", mode="discovered") == 1
    endpoints = [
        Endpoint("10.0.0.1", pod="c-0"),
        Endpoint("10.0.0.2", pod="c-1", ready=False),
        Endpoint("10.0.0.3", pod="c-2", ready=False, terminating=True),
    ]
    chosen = select(endpoints, policy=Policy(), identity=Identity(), now=0.0)
    now = datetime.now(UTC)
    state.publish(chosen, source="kubernetes", now=now)
    assert value(metrics, "seedsvc_stale") == 0
    assert value(metrics, "seedsvc_seeds") == 1
    assert value(metrics, "seedsvc_candidates", state="eligible") == 1
    assert value(metrics, "seedsvc_candidates", state="unready") == 1
    assert value(metrics, "seedsvc_candidates", state="terminating") == 1
    assert value(metrics, "seedsvc_last_success_timestamp_seconds") == now.timestamp()
    state.mark_failing(reason="timeout", detail="no answer")
    assert value(metrics, "seedsvc_stale") == 1


def test_selection_mode_is_one_hot() -> None:
    state = SeedState()
    metrics = Metrics(state)
    state.publish(selection(Mode.STATIC), source="static", now=datetime.now(UTC))
    modes = {str(m): value(metrics, "seedsvc_selection_mode", mode=str(m)) for m in Mode}
    assert modes == {str(m): (1 if m is Mode.STATIC else 0) for m in Mode}


def test_restart_fallback_counts_entries_not_rounds() -> None:
    metrics = Metrics(SeedState())
    for mode in (Mode.DISCOVERED, Mode.RESTART_FALLBACK, Mode.RESTART_FALLBACK, Mode.DISCOVERED,
                 Mode.RESTART_FALLBACK):
        metrics.selected(selection(mode), changed=False)
    assert value(metrics, "seedsvc_restart_fallback_total") == 2


def test_seed_changes_count_only_changes() -> None:
    metrics = Metrics(SeedState())
    for changed in (True, False, True, False):
        metrics.selected(selection(Mode.DISCOVERED), changed=changed)
    assert value(metrics, "seedsvc_seed_changes_total") == 2


def test_skipped_records_and_restarts() -> None:
    metrics = Metrics(SeedState(), source="kubernetes")
    assert value(metrics, "seedsvc_skipped_records_total", source="kubernetes") == 0
    metrics.view("kubernetes", View((), skipped=3))
    metrics.view("kubernetes", View(()))
    metrics.restart("kubernetes", Restart("expired"))
    metrics.restart("kubernetes", Restart("expired"))
    assert value(metrics, "seedsvc_skipped_records_total", source="kubernetes") == 3
    assert value(metrics, "seedsvc_watch_restarts_total", source="kubernetes", reason="expired") == 2


def test_label_values_are_bounded() -> None:
    assert label_value("forbidden") == "forbidden"
    assert label_value("Server Error: 500\nbody") == "server_error_500_body"
    assert len(label_value("x" * 500)) == 40
    assert label_value("") == "unknown"


def test_request_histogram_and_process_metrics_in_exposition() -> None:
    metrics = Metrics(SeedState())
    metrics.request(route="/seeds", method="GET", code=200, seconds=0.002)
    metrics.request(route="/seeds", method="GET", code=200, seconds=250.0)
    assert value(metrics, "seedsvc_http_request_duration_seconds_count", route="/seeds", method="GET",
                 code="200") == 2
    assert value(metrics, "seedsvc_http_request_duration_seconds_bucket", route="/seeds", method="GET",
                 code="200", le="300.0") == 2
    text = generate_latest(metrics.registry).decode()
    assert "process_cpu_seconds_total" in text
