"""The HTTP API over real HTTP on loopback (docs/design.md section 3, docs/http-api.md).

Each test gets its own app (own SeedState, Health and Metrics) behind aiohttp's test server bound to
127.0.0.1; the state is driven through the same calls the discovery loop makes.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seedsvc_sidecar.documents import readiness_document, seeds_document
from seedsvc_sidecar.health import Health
from seedsvc_sidecar.metrics import Metrics
from seedsvc_sidecar.serving import MAX_WAIT, SEEDS_PARAMETERS, entity_tag, make_app, seeds_reply

from seedsvc.records import Endpoint, Identity
from seedsvc.seedlist import SeedList
from seedsvc.selection import Mode, Policy, Selection, select
from seedsvc.sources.events import Failure, Restart, View
from seedsvc.state import SeedState

SEEDS = ("10.0.0.1", "10.0.0.2", "10.0.0.3")


def selection_of(*addresses: str, identity: Identity | None = None, count: int = 3) -> Selection:
    endpoints = [Endpoint(address=a, pod=f"cassandra-{i}", zone=None) for i, a in enumerate(addresses)]
    return select(endpoints, policy=Policy(count=count), identity=identity or Identity(), now=0.0)


def publish(state: SeedState, *addresses: str) -> bool:
    return state.publish(selection_of(*addresses), source="kubernetes", now=datetime.now(UTC))


@dataclass
class Service:
    state: SeedState
    health: Health
    metrics: Metrics
    client: TestClient[web.Request, web.Application]


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    state, health = SeedState(), Health()
    metrics = Metrics(state, source="kubernetes")
    app = make_app(state=state, health=health, metrics=metrics)

    async def boom(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("a bug in a handler")

    app.router.add_get("/test-only/boom", boom)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Service(state, health, metrics, client)


def assert_one_line(text: str) -> None:
    assert text.endswith("\n") and "\n" not in text[:-1] and text.strip(), repr(text)


# --- GET /seeds: text -----------------------------------------------------------------------------


async def test_seeds_text_lists_addresses_with_cache_headers(service: Service) -> None:
    publish(service.state, *SEEDS)
    response = await service.client.get("/seeds")
    assert response.status == 200
    assert await response.text() == "10.0.0.1,10.0.0.2,10.0.0.3"
    assert response.content_type == "text/plain"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Seedsvc-Generation"] == "1"
    assert response.headers["X-Seedsvc-Stale"] == "false"
    assert re.fullmatch(r'"[^"]+"', response.headers["ETag"]), "a strong ETag"


async def test_ipv6_addresses_are_served_unbracketed(service: Service) -> None:
    publish(service.state, "fd00::1", "10.0.0.1")
    response = await service.client.get("/seeds")
    assert set((await response.text()).split(",")) == {"fd00::1", "10.0.0.1"}
    assert "[" not in await response.text()


def test_equal_lists_have_equal_etags_whatever_the_generation_or_restart() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    one = SeedList(seeds=SEEDS, generation=1, source="kubernetes", updated_at=moment)
    other = SeedList(seeds=SEEDS, generation=42, source="dns", stale=True)
    different = SeedList(seeds=SEEDS[:2], generation=1)
    etag = seeds_reply(one, as_json=False).headers["ETag"]
    assert seeds_reply(other, as_json=False).headers["ETag"] == etag
    assert seeds_reply(different, as_json=False).headers["ETag"] != etag
    assert etag == entity_tag("text", b"10.0.0.1,10.0.0.2,10.0.0.3")


async def test_if_none_match_answers_304_with_the_generation_headers(service: Service) -> None:
    publish(service.state, *SEEDS)
    etag = (await service.client.get("/seeds")).headers["ETag"]
    for header in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        response = await service.client.get("/seeds", headers={"If-None-Match": header})
        assert response.status == 304, header
        assert await response.read() == b""
        assert response.headers["ETag"] == etag
        assert response.headers["X-Seedsvc-Generation"] == "1"
        assert response.headers["X-Seedsvc-Stale"] == "false"
    response = await service.client.get("/seeds", headers={"If-None-Match": '"something-else"'})
    assert response.status == 200
    # The same list split over two header fields.
    split = await service.client.get("/seeds", headers=[("If-None-Match", '"nope"'), ("If-None-Match", etag)])
    assert split.status == 304


async def test_changed_list_no_longer_matches_the_old_etag(service: Service) -> None:
    publish(service.state, *SEEDS)
    etag = (await service.client.get("/seeds")).headers["ETag"]
    publish(service.state, "10.0.0.9")
    response = await service.client.get("/seeds", headers={"If-None-Match": etag})
    assert response.status == 200
    assert await response.text() == "10.0.0.9"
    assert response.headers["ETag"] != etag


async def test_head_gives_headers_without_body(service: Service) -> None:
    publish(service.state, *SEEDS)
    response = await service.client.head("/seeds")
    assert response.status == 200
    assert response.headers["X-Seedsvc-Generation"] == "1"
    assert await response.read() == b""


# --- GET /seeds: JSON -----------------------------------------------------------------------------


async def test_json_document_by_format_parameter(service: Service) -> None:
    publish(service.state, *SEEDS)
    response = await service.client.get("/seeds", params={"format": "json"})
    assert response.status == 200
    assert response.content_type == "application/json"
    document = await response.json()
    assert document["seeds"] == list(SEEDS)
    assert document["generation"] == 1
    assert document["source"] == "kubernetes"
    assert document["mode"] == "discovered"
    assert document["stale"] is False
    assert datetime.fromisoformat(document["updated_at"]).tzinfo is not None
    assert isinstance(document["reason"], str)
    assert [c["address"] for c in document["candidates"]] == list(SEEDS)
    first = document["candidates"][0]
    assert {"address", "pod", "ordinal", "zone", "ready", "seed"} <= set(first)
    assert first == first | {"pod": "cassandra-0", "ordinal": 0, "zone": None, "ready": True, "seed": True}
    assert response.headers["X-Seedsvc-Generation"] == "1"
    assert response.headers["X-Seedsvc-Stale"] == "false"


@pytest.mark.parametrize(
    ("query", "accept", "json_expected"),
    [
        ({}, "application/json", True),
        ({}, "text/plain, application/json;q=0.5", False),
        ({}, "application/json, text/plain;q=0.5", True),
        ({}, "application/*", True),
        ({}, "*/*", False),
        ({}, "text/html", False),
        ({}, "application/json;q=0", False),
        ({"format": "text"}, "application/json", False),
        ({"format": "json"}, "text/plain", True),
    ],
)
async def test_content_negotiation(service: Service, query: dict[str, str], accept: str, json_expected: bool) -> None:
    publish(service.state, *SEEDS)
    response = await service.client.get("/seeds", params=query, headers={"Accept": accept})
    assert response.status == 200
    assert response.content_type == ("application/json" if json_expected else "text/plain")
    assert "Accept" in response.headers["Vary"]


async def test_json_and_text_have_different_etags(service: Service) -> None:
    publish(service.state, *SEEDS)
    text = await service.client.get("/seeds")
    as_json = await service.client.get("/seeds", params={"format": "json"})
    assert text.headers["ETag"] != as_json.headers["ETag"]
    again = await service.client.get(
        "/seeds", params={"format": "json"}, headers={"If-None-Match": as_json.headers["ETag"]}
    )
    assert again.status == 304
    crossed = await service.client.get("/seeds", headers={"If-None-Match": as_json.headers["ETag"]})
    assert crossed.status == 200


# --- 503, never an empty 200 ----------------------------------------------------------------------


async def test_nothing_to_serve_is_503_with_retry_after_and_a_reason(service: Service) -> None:
    for params in ({}, {"format": "json"}):
        response = await service.client.get("/seeds", params=params)
        assert response.status == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert response.headers["X-Seedsvc-Generation"] == "0"
        assert response.headers["X-Seedsvc-Stale"] == "false"
        body = await response.text()
        assert_one_line(body)
        assert "discovery has not produced a view yet" in body


async def test_empty_selection_is_503_naming_the_rule_and_the_last_error(service: Service) -> None:
    # Pod 3 alone, not the bootstrap pod, no CASSANDRA_SEEDS: rule 7 leaves it without a list.
    lonely = select([Endpoint("10.0.0.4", pod="cassandra-3")], policy=Policy(),
                    identity=Identity("cassandra-3", "10.0.0.4"), now=0.0)
    assert lonely.served == ()
    service.state.publish(lonely, source="kubernetes", now=datetime.now(UTC))
    service.state.mark_failing(reason="forbidden", detail="endpointslices is forbidden for system:serviceaccount")
    response = await service.client.get("/seeds")
    assert response.status == 503
    body = await response.text()
    assert_one_line(body)
    assert "only ordinal 0 may seed itself" in body
    assert "forbidden" in body
    assert response.headers["X-Seedsvc-Stale"] == "false"


async def test_a_list_is_never_replaced_by_an_empty_200(service: Service) -> None:
    publish(service.state, *SEEDS)
    service.state.mark_failing(reason="unreachable", detail="connection refused")
    response = await service.client.get("/seeds")
    assert response.status == 200
    assert await response.text() == ",".join(SEEDS)


# --- staleness ------------------------------------------------------------------------------------


async def test_stale_flag_while_discovery_fails_and_after_recovery(service: Service) -> None:
    publish(service.state, *SEEDS)
    service.state.mark_failing(reason="timeout", detail="no answer within 10s")
    response = await service.client.get("/seeds")
    assert response.headers["X-Seedsvc-Stale"] == "true"
    assert response.headers["X-Seedsvc-Generation"] == "1"
    document = await (await service.client.get("/seeds", params={"format": "json"})).json()
    assert document["stale"] is True
    publish(service.state, *SEEDS)
    response = await service.client.get("/seeds")
    assert response.headers["X-Seedsvc-Stale"] == "false"


async def test_restored_list_is_served_stale(service: Service) -> None:
    service.state.restore(SeedList(seeds=("10.1.0.1", "10.1.0.2"), generation=7, source="kubernetes"))
    response = await service.client.get("/seeds")
    assert response.status == 200
    assert await response.text() == "10.1.0.1,10.1.0.2"
    assert response.headers["X-Seedsvc-Stale"] == "true"
    assert response.headers["X-Seedsvc-Generation"] == "7"


# --- long-poll ------------------------------------------------------------------------------------


async def test_long_poll_wakes_on_change(service: Service) -> None:
    publish(service.state, *SEEDS)
    poll = asyncio.create_task(service.client.get("/seeds", params={"wait": "30", "generation": "1"}))
    await asyncio.sleep(0.2)
    assert not poll.done(), "answered before anything changed"
    started = time.monotonic()
    publish(service.state, "10.0.0.1", "10.0.0.2", "10.0.0.4")
    response = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 1.0
    assert response.status == 200
    assert await response.text() == "10.0.0.1,10.0.0.2,10.0.0.4"
    assert response.headers["X-Seedsvc-Generation"] == "2"


async def test_long_poll_without_generation_waits_for_the_next_change(service: Service) -> None:
    publish(service.state, *SEEDS)
    poll = asyncio.create_task(service.client.get("/seeds", params={"wait": "30"}))
    await asyncio.sleep(0.2)
    assert not poll.done()
    publish(service.state, "10.0.0.7")
    response = await asyncio.wait_for(poll, 5)
    assert await response.text() == "10.0.0.7"


async def test_long_poll_times_out_with_the_current_list(service: Service) -> None:
    publish(service.state, *SEEDS)
    started = time.monotonic()
    response = await service.client.get("/seeds", params={"wait": "0.4", "generation": "1"})
    elapsed = time.monotonic() - started
    assert 0.35 <= elapsed < 3
    assert response.status == 200
    assert await response.text() == ",".join(SEEDS)
    assert response.headers["X-Seedsvc-Generation"] == "1"


async def test_long_poll_with_an_older_or_newer_generation_answers_at_once(service: Service) -> None:
    publish(service.state, *SEEDS)
    publish(service.state, "10.0.0.5")
    for generation in ("0", "1", "99"):  # behind, behind, ahead (sidecar restarted)
        started = time.monotonic()
        response = await service.client.get("/seeds", params={"wait": "30", "generation": generation})
        assert time.monotonic() - started < 1.0, generation
        assert response.headers["X-Seedsvc-Generation"] == "2"


async def test_long_poll_on_unservable_state_still_answers_503_after_the_wait(service: Service) -> None:
    started = time.monotonic()
    response = await service.client.get("/seeds", params={"wait": "0.3", "generation": "0"})
    assert time.monotonic() - started >= 0.25
    assert response.status == 503
    assert "Retry-After" in response.headers


async def test_long_poll_wakes_when_the_first_list_arrives(service: Service) -> None:
    poll = asyncio.create_task(service.client.get("/seeds", params={"wait": "30", "generation": "0"}))
    await asyncio.sleep(0.2)
    publish(service.state, *SEEDS)
    response = await asyncio.wait_for(poll, 5)
    assert response.status == 200
    assert await response.text() == ",".join(SEEDS)


async def test_long_poll_with_if_none_match_gets_304_on_timeout(service: Service) -> None:
    publish(service.state, *SEEDS)
    etag = (await service.client.get("/seeds")).headers["ETag"]
    response = await service.client.get(
        "/seeds", params={"wait": "0.2", "generation": "1"}, headers={"If-None-Match": etag}
    )
    assert response.status == 304
    assert response.headers["X-Seedsvc-Generation"] == "1"


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("wait=abc", "wait='abc'"),
        ("wait=-1", "wait='-1'"),
        ("wait=nan", "wait='nan'"),
        ("wait=inf", "wait='inf'"),
        ("wait=Infinity", "wait='Infinity'"),
        ("wait=1e3", "wait='1e3'"),
        (f"wait={MAX_WAIT + 1:g}", f"wait='{MAX_WAIT + 1:g}'"),
        ("wait=", "wait=''"),
        ("wait=5%0A", "wait='5\\n'"),
        ("wait=%205", "wait=' 5'"),
        ("wait=1&wait=2", "wait"),
        ("generation=-1", "generation='-1'"),
        ("generation=x", "generation='x'"),
        ("generation=1.5", "generation='1.5'"),
        ("generation=1%0A", "generation='1\\n'"),
        ("generation=99999999999999999999", "generation='99999999999999999999'"),
        ("format=xml", "format='xml'"),
        ("format=JSON", "format='JSON'"),
        ("foo=1", "'foo'"),
        ("wait=5&verbose", "'verbose'"),
    ],
)
async def test_bad_query_is_400_naming_the_parameter_and_value(service: Service, query: str, named: str) -> None:
    publish(service.state, *SEEDS)
    response = await service.client.get(f"/seeds?{query}")
    assert response.status == 400
    body = await response.text()
    assert_one_line(body)
    assert named in body


async def test_unknown_path_is_404_with_a_reason(service: Service) -> None:
    response = await service.client.get("/seed")
    assert response.status == 404
    body = await response.text()
    assert_one_line(body)
    assert "'/seed'" in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_wrong_method_is_405_with_allow(service: Service, method: str) -> None:
    response = await service.client.request(method, "/seeds")
    assert response.status == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD"}
    body = await response.text()
    assert_one_line(body)
    assert method in body


async def test_unexpected_exception_is_a_logged_one_line_500(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    response = await service.client.get("/test-only/boom")
    assert response.status == 500
    assert_one_line(await response.text())
    assert "a bug in a handler" in caplog.text


# --- probes ---------------------------------------------------------------------------------------


async def test_readyz_detail_before_and_after_the_first_list(service: Service) -> None:
    service.state.mark_failing(reason="forbidden", detail="endpointslices is forbidden")
    response = await service.client.get("/readyz")
    assert response.status == 503
    detail = await response.json()
    assert detail["servable"] is False
    assert detail["last_error"] == "endpointslices is forbidden"
    assert detail["last_error_reason"] == "forbidden"
    for key in ("stale", "mode", "reason", "generation", "source", "last_success"):
        assert key in detail
    publish(service.state, *SEEDS)
    response = await service.client.get("/readyz")
    assert response.status == 200
    detail = await response.json()
    assert detail | {"servable": True, "stale": False, "mode": "discovered", "last_error": None,
                     "generation": 1, "source": "kubernetes"} == detail
    assert detail["last_success"] is not None


async def test_readyz_stays_ready_but_says_stale_when_discovery_fails(service: Service) -> None:
    publish(service.state, *SEEDS)
    service.state.mark_failing(reason="unreachable", detail="connection refused")
    response = await service.client.get("/readyz")
    assert response.status == 200
    detail = await response.json()
    assert detail["stale"] is True
    assert detail["last_error_reason"] == "unreachable"


async def test_healthz_follows_the_watched_task(service: Service) -> None:
    response = await service.client.get("/healthz")
    assert response.status == 200
    assert await response.text() == "ok\n"

    blocker = asyncio.Event()
    alive = asyncio.create_task(blocker.wait())
    service.health.watch("discovery", alive)  # type: ignore[arg-type]
    assert (await service.client.get("/healthz")).status == 200

    async def crash() -> None:
        raise RuntimeError("watch loop exploded\r\nsecond line\u2028third")

    dead = asyncio.create_task(crash())
    await asyncio.wait({dead})
    service.health.watch("discovery", dead)
    response = await service.client.get("/healthz")
    assert response.status == 503
    body = await response.text()
    assert_one_line(body)
    assert "discovery task died: RuntimeError: watch loop exploded second line third" in body
    blocker.set()
    await alive


# --- /metrics -------------------------------------------------------------------------------------

METRIC_NAMES = (
    "seedsvc_seeds",
    "seedsvc_seed_changes_total",
    "seedsvc_discovery_errors_total",
    "seedsvc_last_success_timestamp_seconds",
    "seedsvc_stale",
    "seedsvc_watch_restarts_total",
    "seedsvc_candidates",
    "seedsvc_skipped_records_total",
    "seedsvc_selection_mode",
    "seedsvc_restart_fallback_total",
    "seedsvc_http_request_duration_seconds",
    "process_cpu_seconds_total",
)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in Prometheus text format, or None when absent."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


async def test_metrics_exposes_every_metric(service: Service) -> None:
    response = await service.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    text = await response.text()
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name


async def test_metric_values_move_with_discovery_and_requests(service: Service) -> None:
    state, metrics = service.state, service.metrics

    async def scrape() -> str:
        return await (await service.client.get("/metrics")).text()

    before = await scrape()
    assert sample(before, "seedsvc_seeds") == 0
    assert sample(before, "seedsvc_last_success_timestamp_seconds") == 0
    assert sample(before, "seedsvc_selection_mode", mode="unavailable") == 1

    selection = selection_of(*SEEDS)
    metrics.view("kubernetes", View(tuple(c.endpoint for c in selection.candidates), skipped=2))
    changed = state.publish(selection, source="kubernetes", now=datetime.now(UTC))
    metrics.selected(selection, changed=changed)
    metrics.failure("kubernetes", Failure("forbidden", "endpointslices is forbidden"))
    metrics.restart("kubernetes", Restart("expired"))
    state.mark_failing(reason="forbidden", detail="endpointslices is forbidden")
    await service.client.get("/seeds")
    await service.client.get("/no/such/path/12345")

    after = await scrape()
    assert sample(after, "seedsvc_seeds") == 3
    assert sample(after, "seedsvc_seed_changes_total") == 1
    assert sample(after, "seedsvc_skipped_records_total", source="kubernetes") == 2
    assert sample(after, "seedsvc_discovery_errors_total", source="kubernetes", reason="forbidden") == 1
    assert sample(after, "seedsvc_watch_restarts_total", source="kubernetes", reason="expired") == 1
    assert sample(after, "seedsvc_stale") == 1
    assert sample(after, "seedsvc_candidates", state="eligible") == 3
    assert sample(after, "seedsvc_selection_mode", mode="discovered") == 1
    assert sample(after, "seedsvc_selection_mode", mode="unavailable") == 0
    last = sample(after, "seedsvc_last_success_timestamp_seconds")
    assert last is not None and abs(last - time.time()) < 60
    assert sample(after, "seedsvc_http_request_duration_seconds_count",
                  route="/seeds", method="GET", code="200") == 1
    assert sample(after, "seedsvc_http_request_duration_seconds_count",
                  route="unmatched", method="GET", code="404") == 1
    assert "/no/such/path" not in after, "raw paths must never become label values"


# --- robustness -----------------------------------------------------------------------------------


@dataclass
class ThreadedServer:
    port: int


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[ThreadedServer]:
    """A real server in its own thread and loop, so hypothesis can drive it with plain sockets.

    A background task flips the list every 20 ms, so any long-poll the fuzzer builds ends quickly
    and the wake-up path is exercised too.
    """
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    ports: list[int] = []

    async def run() -> None:
        state, health = SeedState(), Health()
        app = make_app(state=state, health=health, metrics=Metrics(state))
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.append(runner.addresses[0][1])
        stop.append(asyncio.Event())

        async def churn() -> None:
            lists = (SEEDS, ("fd00::1", "10.0.0.1"))
            for turn in range(10**9):
                publish(state, *lists[turn % 2])
                await asyncio.sleep(0.02)

        churner = asyncio.create_task(churn())
        ready.set()
        await stop[0].wait()
        churner.cancel()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield ThreadedServer(ports[0])
    finally:
        loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)
        loop.close()


_SEGMENTS = st.one_of(
    st.sampled_from(["seeds", "healthz", "readyz", "metrics", "", ".", "..", "%2e%2e", "%00", "%ff", "seeds;x",
                     "%2fseeds", "SEEDS", "seeds.json", "%C3%A9"]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%"), max_size=12),
)
_VALUES = st.one_of(
    st.sampled_from(["", "0", "0.05", "1", "300", "300.5", "301", "-1", "nan", "inf", "1e3", "json", "text",
                     "xml", "99999999999999999999", "1.5", "%201", "%00", "%C3%A9"]),
    st.text(max_size=16).map(lambda s: quote(s, safe="")),
)
_QUERY = st.lists(
    st.tuples(st.one_of(st.sampled_from(["wait", "generation", "format", "foo", ""]),
                        st.text(max_size=8).map(lambda s: quote(s, safe=""))), _VALUES),
    max_size=4,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
_HEADERS = st.dictionaries(
    st.sampled_from(["Accept", "If-None-Match", "Accept-Encoding"]),
    st.sampled_from(["*/*", "application/json", "text/plain;q=x", "application/json;q=nan", '"x", W/"y"', "*",
                     ",,,", "application/json;q=2", "gzip", ""]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "FOO"]),
    segments=st.lists(_SEGMENTS, min_size=1, max_size=4),
    query=_QUERY,
    headers=_HEADERS,
)
def test_no_input_gives_a_5xx(
    threaded_server: ThreadedServer, method: str, segments: list[str], query: str, headers: dict[str, str]
) -> None:
    path = "/" + "/".join(segments) + (f"?{query}" if query else "")
    connection = http.client.HTTPConnection("127.0.0.1", threaded_server.port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status < 500, (method, path, headers, response.status, body)
    # A method llhttp cannot parse (FOO) is refused by aiohttp itself, before any handler, in its
    # own multi-line words; everything that reaches the app gets one line.
    if response.status >= 400 and method not in ("HEAD", "FOO") and body:
        text = body.decode()
        assert text.endswith("\n") and "\n" not in text[:-1], (path, text)
    if response.status == 200 and segments == ["seeds"] and method == "GET":
        assert body, "never an empty 200"
        if response.getheader("Content-Type", "").startswith("application/json"):
            assert json.loads(body)["seeds"]


# --- the published description matches the code ------------------------------------------------------


def test_openapi_description_matches_the_documents_and_parameters() -> None:
    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml").read_text())
    schemas = spec["components"]["schemas"]
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    snapshot = SeedList(seeds=SEEDS, generation=1, updated_at=moment,
                        candidates=selection_of(*SEEDS).candidates)
    assert set(seeds_document(snapshot)) == set(schemas["SeedsDocument"]["required"])
    assert set(seeds_document(snapshot)["candidates"][0]) == set(schemas["Candidate"]["required"])
    assert set(readiness_document(snapshot)) == set(schemas["Readiness"]["required"])
    assert set(schemas["Mode"]["enum"]) == {str(mode) for mode in Mode}
    query = {p["$ref"].rsplit("/", 1)[1] for p in spec["paths"]["/seeds"]["get"]["parameters"]}
    names = {spec["components"]["parameters"][ref]["name"] for ref in query}
    assert set(SEEDS_PARAMETERS) <= names
    assert spec["components"]["parameters"]["wait"]["schema"]["maximum"] == MAX_WAIT
    assert set(spec["paths"]) == {"/seeds", "/healthz", "/readyz", "/metrics"}
