"""The DNS source: answer -> records conversion and TTL clamping (pure), the polling loop (with an
in-process exchange), and everything again against a real CoreDNS (``dns`` marker) and CoreDNS's
kubernetes plugin on the loopback control plane (``controlplane`` marker)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seedsvc.discovery import Discovery
from seedsvc.records import Endpoint, Identity
from seedsvc.selection import Policy, select
from seedsvc.settings import ConfigError, Settings
from seedsvc.sources.backoff import Backoff
from seedsvc.sources.dns import (
    DnsError,
    DnsSource,
    additional_addresses,
    addresses_from_answer,
    check_rcode,
    diagnose,
    endpoints_for_target,
    nameserver_from_resolv_conf,
    pod_of,
    refresh_after,
    srv_targets,
)
from seedsvc.sources.events import Failure, SourceEvent, View
from seedsvc.state import SeedState
from seedsvc_devcluster import dnsserver
from seedsvc_devcluster.controlplane import ControlPlane, kube_json
from seedsvc_devcluster.dnsserver import CoreDns, a, aaaa, srv
from seedsvc_devcluster.kubelet import Kubelet
from tests.discovery_run import running, wait_for_state

DOMAIN = "cluster.local."
SERVICE = "cassandra.ns.svc"  # relative to the zone
SEED_NAME = f"{SERVICE}.{DOMAIN}"
SRV_NAME = f"_cql._tcp.{SERVICE}"

# Bound for any single wait on the source or the state in the CoreDNS tests: every refresh and
# backoff below is configured to be well under a second.
WAIT_S = 10.0


def pod_address(ordinal: int) -> str:
    return f"127.0.10.{ordinal + 1}"


def pod_target(ordinal: int) -> str:
    return f"cassandra-{ordinal}.{SERVICE}"


# --- helpers ------------------------------------------------------------------------------------------


def response_for(
    qname: str,
    rdtype: str,
    *,
    answer: Sequence[str] = (),
    additional: Sequence[str] = (),
    authority: Sequence[str] = (),
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
) -> dns.message.QueryMessage:
    """A response message as a server would send it; records in zone-file syntax with absolute names."""
    query = dns.message.make_query(qname, rdtype)
    response = dns.message.make_response(query)
    assert isinstance(response, dns.message.QueryMessage)
    response.set_rcode(rcode)
    for section, lines in ((response.answer, answer), (response.additional, additional),
                           (response.authority, authority)):
        for line in lines:
            name, ttl, _cls, kind, *data = line.split()
            kind_code = dns.rdatatype.from_text(kind)
            rdata = dns.rdata.from_text(dns.rdataclass.IN, kind_code, " ".join(data))
            # find_rrset(create=True) keeps the message's index right, which resolve_chaining() uses.
            rrset = response.find_rrset(section, dns.name.from_text(name), dns.rdataclass.IN, kind_code, create=True)
            rrset.add(rdata, int(ttl))
    return response


SOA = f"{DOMAIN} 60 IN SOA ns.{DOMAIN} hostmaster.{DOMAIN} 1 7200 1800 86400 4"


class FakeExchange:
    """In-process answers for testing the polling loop without sockets; ``answers`` maps
    ``(name, type)`` to a factory so a test can change them between rounds."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], Callable[[dns.message.Message], dns.message.Message]] = {}
        self.queries: list[tuple[str, str]] = []

    def records(self, name: str, rdtype: str, lines: list[str], *, additional: Sequence[str] = ()) -> None:
        self.answers[(name, rdtype)] = lambda q: response_for(
            name, rdtype, answer=lines, additional=additional, authority=[] if lines else [SOA]
        )

    def rcode(self, name: str, rdtype: str, rcode: dns.rcode.Rcode) -> None:
        self.answers[(name, rdtype)] = lambda q: response_for(name, rdtype, rcode=rcode, authority=[SOA])

    async def __call__(self, query: dns.message.Message) -> dns.message.Message:
        question = query.question[0]
        key = (question.name.to_text(), dns.rdatatype.to_text(question.rdtype))
        self.queries.append(key)
        factory = self.answers.get(key)
        if factory is None:
            # A name with records of other types has NODATA for this one; any other name is unknown.
            known = any(name == key[0] for name, _ in self.answers)
            return response_for(key[0], key[1], rcode=dns.rcode.NOERROR if known else dns.rcode.NXDOMAIN,
                                authority=[SOA])
        response = factory(query)
        response.id = query.id
        return response


def settings_for(**changes: Any) -> Settings:
    base = Settings.build(
        source="dns",
        dns_name=SEED_NAME.rstrip("."),
        dns_nameserver=("127.0.0.1", 53),
        dns_min_refresh=0.05,
        dns_max_refresh=0.2,
        dns_timeout=0.5,
        backoff_max=0.1,
    )
    return base.replace(**changes)


async def next_event(events: AsyncIterator[SourceEvent], timeout_s: float = WAIT_S) -> SourceEvent:
    async with asyncio.timeout(timeout_s):
        return await anext(events)


async def event_until(
    events: AsyncIterator[SourceEvent], predicate: Callable[[SourceEvent], bool], timeout_s: float = WAIT_S
) -> tuple[SourceEvent, list[SourceEvent]]:
    """The first event that matches, and every event seen before it; fails after ``timeout_s``."""
    seen: list[SourceEvent] = []
    async with asyncio.timeout(timeout_s):
        async for event in events:
            if predicate(event):
                return event, seen
            seen.append(event)
    raise AssertionError(f"the source ended; events: {seen}")


@contextlib.asynccontextmanager
async def updates_of(source: DnsSource) -> AsyncIterator[AsyncIterator[SourceEvent]]:
    events = source.updates()
    try:
        yield events
    finally:
        await events.aclose()  # type: ignore[attr-defined]


def is_view(event: SourceEvent) -> bool:
    return isinstance(event, View)


def addresses(view: SourceEvent) -> set[str]:
    assert isinstance(view, View), view
    return {e.address for e in view.endpoints}


# --- pure: TTL clamping -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "expected"),
    [(0, 1.0), (1, 1.0), (5, 5.0), (30, 30.0), (31, 30.0), (86400, 30.0), (2**31 - 1, 30.0)],
)
def test_refresh_is_the_ttl_clamped_to_the_bounds(ttl: int, expected: float) -> None:
    assert refresh_after(ttl, minimum=1.0, maximum=30.0) == expected


@given(
    ttl=st.integers(min_value=0, max_value=2**31 - 1),
    low=st.floats(min_value=0.1, max_value=3600),
    span=st.floats(min_value=0, max_value=86400),
)
def test_refresh_never_leaves_the_bounds(ttl: int, low: float, span: float) -> None:
    high = low + span
    delay = refresh_after(ttl, minimum=low, maximum=high)
    assert low <= delay <= high
    if low <= ttl <= high:
        assert delay == ttl


# --- pure: answers to records -------------------------------------------------------------------------


def test_a_answer_gives_addresses_and_ttl() -> None:
    response = response_for(SEED_NAME, "A", answer=[f"{SEED_NAME} 7 IN A 10.0.0.2", f"{SEED_NAME} 7 IN A 10.0.0.1"])
    found = addresses_from_answer(response, what="test")
    assert sorted(found.addresses) == ["10.0.0.1", "10.0.0.2"]
    assert (found.skipped, found.ttl) == (0, 7)


def test_addresses_no_node_can_have_are_skipped() -> None:
    answer = [f"{SEED_NAME} 7 IN A {a}" for a in ("10.0.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255")]
    found = addresses_from_answer(response_for(SEED_NAME, "A", answer=answer), what="test")
    assert (found.addresses, found.skipped) == (("10.0.0.1",), 3)


def test_aaaa_answer_is_normalised() -> None:
    long_form = "2001:0DB8:0000:0000:0000:0000:0000:0001"
    response = response_for(SEED_NAME, "AAAA", answer=[f"{SEED_NAME} 5 IN AAAA {long_form}"])
    assert addresses_from_answer(response, what="test").addresses == ("2001:db8::1",)


def test_cname_chain_is_followed_and_its_ttl_counts() -> None:
    alias = f"seeds.{DOMAIN}"
    response = response_for(
        alias, "A", answer=[f"{alias} 3 IN CNAME {SEED_NAME}", f"{SEED_NAME} 20 IN A 10.0.0.1"]
    )
    found = addresses_from_answer(response, what="test")
    assert (found.addresses, found.ttl) == (("10.0.0.1",), 3)


def test_nodata_is_empty_with_the_negative_ttl() -> None:
    response = response_for(SEED_NAME, "A", authority=[SOA])
    found = addresses_from_answer(response, what="test")
    # RFC 2308 section 5: min(SOA TTL 60, SOA minimum 4).
    assert (found.addresses, found.skipped, found.ttl) == ((), 0, 4)


def test_answer_for_nxdomain_is_a_bad_response() -> None:
    response = response_for(SEED_NAME, "A", answer=[f"{SEED_NAME} 5 IN A 10.0.0.1"], rcode=dns.rcode.NXDOMAIN)
    with pytest.raises(DnsError) as caught:
        addresses_from_answer(response, what="test")
    assert caught.value.reason == "bad_response"


@pytest.mark.parametrize(
    ("rcode", "reason"),
    [
        (dns.rcode.NXDOMAIN, "nxdomain"),
        (dns.rcode.SERVFAIL, "servfail"),
        (dns.rcode.REFUSED, "refused"),
        (dns.rcode.FORMERR, "formerr"),
        (dns.rcode.NOTIMP, "notimp"),
    ],
)
def test_error_rcodes_become_failure_reasons(rcode: dns.rcode.Rcode, reason: str) -> None:
    with pytest.raises(DnsError) as caught:
        check_rcode(response_for(SEED_NAME, "A", rcode=rcode), server="127.0.0.1:53", what=f"{SEED_NAME} A")
    assert caught.value.reason == reason
    assert dns.rcode.to_text(rcode) in caught.value.detail and SEED_NAME in caught.value.detail


def test_noerror_passes() -> None:
    check_rcode(response_for(SEED_NAME, "A"), server="127.0.0.1:53", what="x")


def test_srv_targets_are_distinct_and_root_targets_skipped() -> None:
    name = f"_cql._tcp.{SEED_NAME}"
    t0, t1 = f"cassandra-0.{SEED_NAME}", f"cassandra-1.{SEED_NAME}"
    response = response_for(
        name,
        "SRV",
        answer=[
            f"{name} 9 IN SRV 0 10 9042 {t1}",
            f"{name} 9 IN SRV 0 10 9142 {t1}",  # the same pod under a second port
            f"{name} 9 IN SRV 0 10 9042 {t0}",
            f"{name} 9 IN SRV 0 10 9042 .",
        ],
    )
    targets, skipped, ttl = srv_targets(response, what="test")
    assert sorted(t.to_text() for t in targets) == [t0, t1]
    assert (skipped, ttl) == (1, 9)


def test_additional_addresses_of_a_target() -> None:
    target = f"cassandra-0.{SEED_NAME}"
    response = response_for(
        f"_cql._tcp.{SEED_NAME}",
        "SRV",
        answer=[f"_cql._tcp.{SEED_NAME} 9 IN SRV 0 10 9042 {target}"],
        additional=[f"{target} 4 IN A 10.0.0.1", f"{target} 6 IN AAAA fd00::1", f"other.{DOMAIN} 1 IN A 10.9.9.9"],
    )
    found = additional_addresses(response, dns.name.from_text(target))
    assert found is not None
    assert (sorted(found.addresses), found.ttl) == (["10.0.0.1", "fd00::1"], 4)
    assert additional_addresses(response, dns.name.from_text(f"cassandra-1.{SEED_NAME}")) is None


@pytest.mark.parametrize(
    ("target", "address", "pod"),
    [
        ("cassandra-2.cassandra.ns.svc.cluster.local.", "10.0.0.3", "cassandra-2"),
        ("Cassandra-12.cassandra.ns.svc.cluster.local.", "10.0.0.3", "cassandra-12"),
        # CoreDNS names an endpoint without hostname by its dashed address: not a pod, no ordinal.
        ("10-0-0-3.cassandra.ns.svc.cluster.local.", "10.0.0.3", None),
        ("fd00--3.cassandra.ns.svc.cluster.local.", "fd00::3", None),
        ("fd00--0.cassandra.ns.svc.cluster.local.", "fd00::", None),
        (".", "10.0.0.3", None),
    ],
)
def test_pod_is_the_first_label_of_the_target(target: str, address: str, pod: str | None) -> None:
    assert pod_of(dns.name.from_text(target), address) == pod


def test_srv_answer_in_any_order_selects_by_ordinal() -> None:
    name = f"_cql._tcp.{SEED_NAME}"
    ordinals = list(range(6))
    random.Random(4).shuffle(ordinals)
    response = response_for(
        name,
        "SRV",
        answer=[f"{name} 5 IN SRV 0 10 9042 cassandra-{n}.{SEED_NAME}" for n in ordinals],
        # Addresses deliberately in the opposite order to the ordinals.
        additional=[f"cassandra-{n}.{SEED_NAME} 5 IN A 10.0.0.{50 - n}" for n in ordinals],
    )
    targets, _, _ = srv_targets(response, what="test")
    endpoints: list[Endpoint] = []
    for target in targets:
        found = additional_addresses(response, target)
        assert found is not None
        endpoints += endpoints_for_target(target, found.addresses)
    selection = select(endpoints, policy=Policy(count=3), identity=Identity(), now=0.0)
    assert selection.seeds == ("10.0.0.50", "10.0.0.49", "10.0.0.48")
    assert [c.endpoint.ordinal for c in selection.candidates] == list(range(6))


# --- configuration ------------------------------------------------------------------------------------


def test_nameserver_from_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nsearch ns.svc.cluster.local svc.cluster.local\nnameserver bogus\n"
                      "nameserver 10.96.0.10 # kube-dns\nnameserver 10.96.0.11\n")
    assert nameserver_from_resolv_conf(resolv) == "10.96.0.10"
    assert nameserver_from_resolv_conf(tmp_path / "missing") is None


def test_source_uses_resolv_conf_when_no_nameserver_is_set(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver fd00::10\n")
    source = DnsSource(settings_for(dns_nameserver=None), resolv_conf=resolv)
    assert source.server == "[fd00::10]:53"
    assert source.name == "dns"


def test_source_without_any_nameserver_is_a_config_error(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search cluster.local\n")
    with pytest.raises(ConfigError, match="nameserver"):
        DnsSource(settings_for(dns_nameserver=None), resolv_conf=resolv)


def test_query_names() -> None:
    assert DnsSource(settings_for()).query_name == SEED_NAME
    assert DnsSource(settings_for(srv_port_name="cql")).query_name == f"_cql._tcp.{SEED_NAME}"
    default = Settings.build(source="dns", service="db", namespace="prod", dns_nameserver=("127.0.0.1", 53))
    assert DnsSource(default).query_name == "db.prod.svc.cluster.local."


# --- the polling loop, with in-process answers --------------------------------------------------------


async def test_views_only_when_the_set_changes() -> None:
    fake = FakeExchange()
    one = [f"{SEED_NAME} 0 IN A 10.0.0.1"]
    two = [*one, f"{SEED_NAME} 0 IN A 10.0.0.2"]
    rounds = 0

    def answer(query: dns.message.Message) -> dns.message.Message:
        # The same answer for six rounds, then a second address.
        nonlocal rounds
        rounds += 1
        return response_for(SEED_NAME, "A", answer=one if rounds <= 6 else two)

    fake.answers[(SEED_NAME, "A")] = answer
    fake.records(SEED_NAME, "AAAA", [])
    async with updates_of(DnsSource(settings_for(), exchange=fake)) as events:
        assert addresses(await next_event(events)) == {"10.0.0.1"}
        assert addresses(await next_event(events)) == {"10.0.0.1", "10.0.0.2"}
    assert rounds == 7  # rounds 2 to 6 yielded nothing


async def test_a_failure_is_followed_by_a_view_even_when_nothing_changed() -> None:
    # Without this the consumer would keep its list marked stale although DNS answers again.
    fake = FakeExchange()
    fake.records(SEED_NAME, "A", [f"{SEED_NAME} 0 IN A 10.0.0.1"])
    backoff = Backoff(initial=0.01, maximum=0.02)
    async with updates_of(DnsSource(settings_for(), exchange=fake, backoff=backoff)) as events:
        first = await next_event(events)
        fake.rcode(SEED_NAME, "A", dns.rcode.SERVFAIL)
        failure = await next_event(events)
        assert isinstance(failure, Failure) and failure.reason == "servfail"
        assert failure.retry_in is not None and 0 < failure.retry_in <= 0.02
        fake.records(SEED_NAME, "A", [f"{SEED_NAME} 0 IN A 10.0.0.1"])
        recovered, failures = await event_until(events, is_view)
        assert recovered == first
        assert all(isinstance(f, Failure) for f in failures)


async def test_backoff_grows_while_failing_and_resets_on_success() -> None:
    fake = FakeExchange()
    fake.rcode(SEED_NAME, "A", dns.rcode.REFUSED)
    backoff = Backoff(initial=0.01, maximum=0.04, rng=random.Random(1))
    async with updates_of(DnsSource(settings_for(), exchange=fake, backoff=backoff)) as events:
        delays = []
        for _ in range(4):
            event = await next_event(events)
            assert isinstance(event, Failure) and event.reason == "refused" and event.retry_in is not None
            delays.append(event.retry_in)
        assert delays[0] <= 0.01 and delays[3] >= 0.02  # 0.01, 0.02, 0.04, 0.04 with half jitter
        fake.records(SEED_NAME, "A", [f"{SEED_NAME} 0 IN A 10.0.0.1"])
        await event_until(events, is_view)
        fake.rcode(SEED_NAME, "A", dns.rcode.REFUSED)
        again = await next_event(events)
        assert isinstance(again, Failure) and again.retry_in is not None and again.retry_in <= 0.01


async def test_a_and_aaaa_together() -> None:
    fake = FakeExchange()
    fake.records(SEED_NAME, "A", [f"{SEED_NAME} 5 IN A 10.0.0.1"])
    fake.records(SEED_NAME, "AAAA", [f"{SEED_NAME} 5 IN AAAA fd00:0:0::1"])
    resolution = await DnsSource(settings_for(), exchange=fake).resolve()
    assert resolution.endpoints == (Endpoint("10.0.0.1"), Endpoint("fd00::1"))
    # AAAA NODATA carries the SOA's negative TTL, which bounds the refresh like any other TTL.
    fake.records(SEED_NAME, "AAAA", [])
    assert (await DnsSource(settings_for(), exchange=fake).resolve()).ttl == 4


async def test_srv_targets_without_additional_records_are_looked_up() -> None:
    fake = FakeExchange()
    name = f"_cql._tcp.{SEED_NAME}"
    t0, t1, t2 = (f"cassandra-{n}.{SEED_NAME}" for n in range(3))
    fake.records(name, "SRV", [f"{name} 30 IN SRV 0 10 9042 {t}" for t in (t2, t0, t1)],
                 additional=[f"{t0} 30 IN A 10.0.0.1"])
    fake.records(t1, "A", [f"{t1} 2 IN A 10.0.0.2"])
    fake.records(t1, "AAAA", [])
    # t2 has no record at all (NXDOMAIN): one skipped record, not a failure.
    source = DnsSource(settings_for(srv_port_name="cql"), exchange=fake)
    resolution = await source.resolve()
    assert resolution.endpoints == (Endpoint("10.0.0.1", pod="cassandra-0"), Endpoint("10.0.0.2", pod="cassandra-1"))
    assert resolution.skipped == 1
    assert resolution.ttl == 2
    assert (t0, "A") not in fake.queries  # additional records are used as they are


async def test_a_target_lookup_error_fails_the_round() -> None:
    # A partial set would drop seeds that still exist; the last complete one is better.
    fake = FakeExchange()
    name = f"_cql._tcp.{SEED_NAME}"
    target = f"cassandra-0.{SEED_NAME}"
    fake.records(name, "SRV", [f"{name} 30 IN SRV 0 10 9042 {target}"])
    fake.rcode(target, "A", dns.rcode.SERVFAIL)
    fake.records(target, "AAAA", [])
    with pytest.raises(DnsError) as caught:
        await DnsSource(settings_for(srv_port_name="cql"), exchange=fake).resolve()
    assert caught.value.reason == "servfail" and target in caught.value.detail


async def test_slow_server_is_a_timeout() -> None:
    async def never(query: dns.message.Message) -> dns.message.Message:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    started = time.monotonic()
    with pytest.raises(DnsError) as caught:
        await DnsSource(settings_for(dns_timeout=0.1), exchange=never).resolve()
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("error", [dns.message.ShortHeader, dns.message.TrailingJunk, dns.exception.FormError])
async def test_malformed_answers_are_bad_responses(error: type[Exception]) -> None:
    async def broken(query: dns.message.Message) -> dns.message.Message:
        raise error

    with pytest.raises(DnsError) as caught:
        await DnsSource(settings_for(), exchange=broken).resolve()
    assert caught.value.reason == "bad_response"


async def test_a_query_instead_of_an_answer_is_a_bad_response() -> None:
    async def echo(query: dns.message.Message) -> dns.message.Message:
        return query

    with pytest.raises(DnsError) as caught:
        await DnsSource(settings_for(), exchange=echo).resolve()
    assert caught.value.reason == "bad_response"


async def test_diagnose_reports_the_answer() -> None:
    checks = await diagnose(settings_for(dns_nameserver=None), resolv_conf=Path("/nonexistent/resolv.conf"))
    assert [c.ok for c in checks] == [False]
    assert "nameserver" in checks[0].detail


# --- against a real CoreDNS ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def coredns_binary() -> Path:
    try:
        return dnsserver.coredns_binary()
    except dnsserver.DnsServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def coredns(coredns_binary: Path, tmp_path: Path) -> Iterator[CoreDns]:
    """A CoreDNS serving cluster.local and example.test, empty at first; stopped afterwards (also when
    the test left it paused)."""
    server = CoreDns(coredns_binary, tmp_path / "coredns", zones=(DOMAIN, "example.test."))
    try:
        server.start()
    except dnsserver.DnsServerError as exc:
        server.stop()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def statefulset_records(ordinals: list[int], *, ttl: int = 5) -> list[str]:
    """SRV and A records as CoreDNS's kubernetes plugin serves a headless StatefulSet Service."""
    lines = [srv(SRV_NAME, pod_target(n), ttl=ttl) for n in ordinals]
    lines += [a(pod_target(n), pod_address(n), ttl=ttl) for n in ordinals]
    lines += [a(SERVICE, pod_address(n), ttl=ttl) for n in ordinals]
    return lines


def dns_settings(server: CoreDns, **changes: Any) -> Settings:
    return settings_for(dns_nameserver=server.address, **changes)


@pytest.mark.dns
async def test_srv_records_in_shuffled_order_select_by_ordinal(coredns: CoreDns) -> None:
    ordinals = list(range(7))
    random.Random(7).shuffle(ordinals)
    lines = statefulset_records(ordinals)
    random.Random(8).shuffle(lines)
    await coredns.changed(lines)
    async with updates_of(DnsSource(dns_settings(coredns, srv_port_name="cql"))) as events:
        view = await next_event(events)
    assert isinstance(view, View) and view.skipped == 0
    assert {(e.pod, e.address) for e in view.endpoints} == {(f"cassandra-{n}", pod_address(n)) for n in range(7)}
    assert all(e.ready and e.zone is None for e in view.endpoints)
    selection = select(view.endpoints, policy=Policy(count=3), identity=Identity(pod_name="cassandra-1"), now=0.0)
    assert selection.seeds == tuple(pod_address(n) for n in (0, 1, 2))
    assert selection.served == (pod_address(0), pod_address(2))


@pytest.mark.dns
async def test_srv_targets_outside_the_zone_are_resolved_and_missing_ones_skipped(coredns: CoreDns) -> None:
    # CoreDNS only adds additional records for targets in the same zone, so these need lookups.
    await coredns.changed(["cassandra-0 5 IN A 127.0.20.1", "cassandra-0 5 IN AAAA fd00::20:1"],
                          origin="example.test.")
    await coredns.changed([
        srv(SRV_NAME, "cassandra-0.example.test."),
        srv(SRV_NAME, "cassandra-1.example.test."),  # no such name
        srv(SRV_NAME, pod_target(2)),
        a(pod_target(2), pod_address(2)),
    ])
    resolution = await DnsSource(dns_settings(coredns, srv_port_name="cql")).resolve()
    assert set(resolution.endpoints) == {
        Endpoint("127.0.20.1", pod="cassandra-0"),
        Endpoint("fd00::20:1", pod="cassandra-0"),
        Endpoint(pod_address(2), pod="cassandra-2"),
    }
    assert resolution.skipped == 1


@pytest.mark.dns
async def test_a_records_only(coredns: CoreDns) -> None:
    await coredns.changed([a(SERVICE, pod_address(n)) for n in (3, 1, 2)])
    async with updates_of(DnsSource(dns_settings(coredns))) as events:
        view = await next_event(events)
    assert isinstance(view, View)
    assert view.endpoints == tuple(Endpoint(pod_address(n)) for n in (1, 2, 3))
    assert [e.ordinal for e in view.endpoints] == [None, None, None]


@pytest.mark.dns
async def test_aaaa_records_are_normalised(coredns: CoreDns) -> None:
    await coredns.changed([aaaa(SERVICE, "fd00:0:0:0:0:0:10:2"), aaaa(SERVICE, "FD00::10:1"), a(SERVICE, "127.0.10.9")])
    resolution = await DnsSource(dns_settings(coredns)).resolve()
    assert {e.address for e in resolution.endpoints} == {"fd00::10:1", "fd00::10:2", "127.0.10.9"}


@pytest.mark.dns
async def test_large_answers_fall_back_to_tcp(coredns: CoreDns) -> None:
    # 120 AAAA records are about 3.4 kB: more than the 1232-byte EDNS buffer, so CoreDNS truncates
    # the UDP answer and the whole set must come over TCP.
    await coredns.changed([aaaa(SERVICE, f"fd00::{n:x}") for n in range(1, 121)])
    resolution = await DnsSource(dns_settings(coredns)).resolve()
    assert len(resolution.endpoints) == 120


@pytest.mark.dns
@pytest.mark.parametrize("ttl", [0, 1, 3600], ids=["ttl0-min", "ttl1", "ttl3600-max"])
async def test_a_change_is_seen_within_the_ttl_bound(coredns: CoreDns, ttl: int) -> None:
    # Refresh bounds 0.2 s and 1.5 s: TTL 0 must be polled at the minimum, TTL 1 at its TTL, and
    # TTL 3600 at the maximum, not after an hour.
    settings = dns_settings(coredns, srv_port_name="cql", dns_min_refresh=0.2, dns_max_refresh=1.5)
    bound = refresh_after(ttl, minimum=settings.dns.min_refresh, maximum=settings.dns.max_refresh)
    await coredns.changed(statefulset_records([0, 1, 2], ttl=ttl))
    async with updates_of(DnsSource(settings)) as events:
        assert addresses(await next_event(events)) == {pod_address(n) for n in (0, 1, 2)}
        await coredns.changed(statefulset_records([0, 1, 3], ttl=ttl))
        served_at = time.monotonic()
        view = await next_event(events, timeout_s=bound + 5)
        elapsed = time.monotonic() - served_at
    assert addresses(view) == {pod_address(n) for n in (0, 1, 3)}
    # The next round is at most one refresh interval away; allow for one round trip on a busy host.
    assert elapsed <= bound + 0.5, f"took {elapsed:.2f}s, refresh bound {bound}s"


@pytest.mark.dns
async def test_name_without_records_is_an_empty_view(coredns: CoreDns) -> None:
    # NODATA: the name exists (here it has only a TXT record), but has no address. That is DNS
    # saying there are no ready endpoints; the source reports it as it is.
    await coredns.changed([f"{SERVICE} 5 IN TXT \"no pods\""])
    async with updates_of(DnsSource(dns_settings(coredns))) as events:
        view = await next_event(events)
    assert view == View(())


BEFORE = [0, 1, 2]
AFTER = [0, 1, 3]


@contextlib.contextmanager
def inject(coredns: CoreDns, fault: str, name: str) -> Iterator[None]:
    """Make CoreDNS fail for ``name``: ``timeout`` stops the process until the block ends; the
    others replace the zone's records (the caller writes new ones to recover)."""
    if fault == "timeout":
        coredns.pause()
        try:
            yield
        finally:
            coredns.resume()
        return
    coredns.set_records(dnsserver.servfail_records(name) if fault == "servfail" else [])
    yield


@pytest.mark.dns
@pytest.mark.parametrize("srv_mode", [False, True], ids=["a", "srv"])
@pytest.mark.parametrize("fault", ["nxdomain", "servfail", "timeout"])
async def test_faults_are_failures_until_the_server_recovers(coredns: CoreDns, fault: str, srv_mode: bool) -> None:
    await coredns.changed(statefulset_records(BEFORE))
    settings = dns_settings(coredns, srv_port_name="cql" if srv_mode else None, dns_timeout=0.3)
    async with updates_of(DnsSource(settings)) as events:
        assert addresses(await next_event(events)) == {pod_address(n) for n in BEFORE}
        with inject(coredns, fault, SRV_NAME if srv_mode else SERVICE):
            failure, _ = await event_until(events, lambda e: isinstance(e, Failure))
            retried = await next_event(events)
            if fault != "timeout":
                await coredns.changed(statefulset_records(AFTER))
        recovered, between = await event_until(events, is_view)
    assert isinstance(failure, Failure) and failure.reason == fault
    assert failure.retry_in is not None and 0 < failure.retry_in <= settings.discovery.backoff_max
    assert isinstance(retried, Failure) and retried.reason == fault
    assert all(isinstance(e, Failure) for e in between)
    # After a timeout the server answers with what it had; after the others, with the new records.
    # Either way a View comes, even when the set is the one from before the fault.
    assert addresses(recovered) == {pod_address(n) for n in (BEFORE if fault == "timeout" else AFTER)}


@pytest.mark.dns
async def test_name_outside_the_servers_zones_is_refused(coredns: CoreDns) -> None:
    async with updates_of(DnsSource(dns_settings(coredns, dns_name="cassandra.ns.svc.other.local"))) as events:
        failure = await next_event(events)
    assert isinstance(failure, Failure) and failure.reason == "refused"
    assert "REFUSED" in failure.detail and f"127.0.0.1:{coredns.port}" in failure.detail


@pytest.mark.dns
async def test_diagnose_against_coredns(coredns: CoreDns) -> None:
    await coredns.changed(statefulset_records([0, 1]))
    checks = await diagnose(dns_settings(coredns, srv_port_name="cql"))
    assert [c.ok for c in checks] == [True, True]
    assert pod_address(0) in checks[1].detail
    coredns.set_records([])
    await coredns.wait_serial(coredns.serial)
    checks = await diagnose(dns_settings(coredns, srv_port_name="cql"))
    assert not checks[1].ok and "nxdomain" in checks[1].detail


@pytest.mark.dns
@pytest.mark.parametrize("fault", ["nxdomain", "servfail", "timeout"])
async def test_discovery_keeps_the_last_list_stale_during_a_fault(coredns: CoreDns, fault: str) -> None:
    await coredns.changed(statefulset_records([2, 0, 1, 3]))
    state = SeedState()
    discovery = Discovery(
        source=DnsSource(dns_settings(coredns, srv_port_name="cql", dns_timeout=0.3)),
        policy=Policy(count=3),
        identity=Identity(pod_name="cassandra-5"),
        state=state,
    )
    async with running(discovery):
        first = tuple(pod_address(n) for n in (0, 1, 2))
        await wait_for_state(state, lambda s: s.seeds == first and not s.stale, "first list served", timeout=WAIT_S)
        generation = state.snapshot.generation

        with inject(coredns, fault, SRV_NAME):
            await wait_for_state(state, lambda s: s.stale, "stale during the fault", timeout=WAIT_S)
            snapshot = state.snapshot
            assert snapshot.seeds == first and snapshot.generation == generation
            assert snapshot.last_error_reason == fault and snapshot.last_error
            if fault != "timeout":
                # Recovery with a different list: pod 0 is gone.
                await coredns.changed(statefulset_records([1, 2, 3]))
        if fault == "timeout":
            # The server answers again with what it had: the same list, no longer stale.
            await wait_for_state(
                state, lambda s: s.seeds == first and not s.stale, "fresh after the fault", timeout=WAIT_S
            )
            assert state.snapshot.generation == generation
            await coredns.changed(statefulset_records([1, 2, 3]))

        second = tuple(pod_address(n) for n in (1, 2, 3))
        await wait_for_state(
            state, lambda s: s.seeds == second and not s.stale, "new list after recovery", timeout=WAIT_S
        )
        assert state.snapshot.generation == generation + 1
        assert state.snapshot.last_error_reason is None


@pytest.mark.dns
async def test_recovery_with_the_same_list_clears_staleness(coredns: CoreDns) -> None:
    await coredns.changed(statefulset_records([0, 1, 2]))
    state = SeedState()
    discovery = Discovery(
        source=DnsSource(dns_settings(coredns, srv_port_name="cql")),
        policy=Policy(count=3),
        identity=Identity(),
        state=state,
    )
    async with running(discovery):
        await wait_for_state(state, lambda s: len(s.seeds) == 3 and not s.stale, "first list", timeout=WAIT_S)
        generation = state.snapshot.generation
        await coredns.changed([])  # NXDOMAIN
        await wait_for_state(state, lambda s: s.stale, "stale", timeout=WAIT_S)
        await coredns.changed(statefulset_records([0, 1, 2]))
        await wait_for_state(state, lambda s: not s.stale, "fresh again", timeout=WAIT_S)
        assert state.snapshot.generation == generation  # same list: no new generation


async def test_garbage_from_the_server_is_a_bad_response() -> None:
    # A hand-written fake, not CoreDNS: no real server sends a malformed message on demand. It
    # answers every datagram with the query's ID followed by junk that is no DNS message.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fake:
        fake.bind(("127.0.0.1", 0))
        fake.setblocking(False)
        port = int(fake.getsockname()[1])
        loop = asyncio.get_running_loop()

        async def answer_with_junk() -> None:
            while True:
                data, peer = await loop.sock_recvfrom(fake, 512)
                await loop.sock_sendto(fake, data[:2] + b"\x81\x80\x00\x01\xff", peer)

        junk = asyncio.create_task(answer_with_junk())
        try:
            with pytest.raises(DnsError) as caught:
                await DnsSource(settings_for(dns_nameserver=("127.0.0.1", port))).resolve()
        finally:
            junk.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await junk
    assert caught.value.reason == "bad_response"


# --- against CoreDNS's kubernetes plugin on the loopback control plane ----------------------------------


def create_headless_statefulset(api: Any, namespace: str, replicas: int) -> None:
    labels = {"app": "cassandra"}
    kube_json(api, "POST", f"/api/v1/namespaces/{namespace}/services", {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "cassandra", "labels": labels},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "cql", "port": 9042}]},
    })
    kube_json(api, "POST", f"/apis/apps/v1/namespaces/{namespace}/statefulsets", {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "cassandra"},
        "spec": {
            "serviceName": "cassandra",
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "cassandra", "image": "cassandra:5.0",
                                         "ports": [{"name": "cql", "containerPort": 9042}]}]},
            },
        },
    })


@pytest.mark.controlplane
@pytest.mark.dns
async def test_coredns_kubernetes_answers_nxdomain_for_a_headless_service_without_ready_pods(
    control_plane: ControlPlane, kube_api: Any, kubelet: Kubelet, namespace: str
) -> None:
    """What the docs claim: CoreDNS's kubernetes plugin answers NXDOMAIN, not NODATA, for a headless
    Service whose pods all exist but are unready, so the DNS source reports a failure (and the last
    list is kept, stale) instead of an empty view."""
    create_headless_statefulset(kube_api, namespace, replicas=3)
    pods = await asyncio.to_thread(kubelet.wait_for_pods, namespace, "app=cassandra", 3, timeout=60.0)
    by_pod = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    settings = Settings.build(
        source="dns", service="cassandra", namespace=namespace, cluster_domain=control_plane.cluster_domain,
        dns_nameserver=control_plane.dns, srv_port_name="cql",
        dns_min_refresh=0.2, dns_max_refresh=1.0, dns_timeout=1.0, backoff_max=0.5,
    )
    async with updates_of(DnsSource(settings)) as events:
        view, _ = await event_until(events, lambda e: isinstance(e, View) and len(e.endpoints) == 3, timeout_s=60)
        assert isinstance(view, View)
        assert {(e.pod, e.address) for e in view.endpoints} == set(by_pod.items())
        assert {e.ordinal for e in view.endpoints} == {0, 1, 2}

        for name in by_pod:
            await asyncio.to_thread(kubelet.set_ready, namespace, name, False)
        failure, between = await event_until(events, lambda e: isinstance(e, Failure), timeout_s=60)
        assert isinstance(failure, Failure) and failure.reason == "nxdomain", failure
        # On the way the set may shrink pod by pod, but never to an empty view.
        assert all(isinstance(e, View) and e.endpoints for e in between), between

        # Not a quirk of SRV: the plain name is NXDOMAIN too.
        plain = DnsSource(settings.replace(srv_port_name=None))
        with pytest.raises(DnsError) as caught:
            await plain.resolve()
        assert caught.value.reason == "nxdomain"

        await asyncio.to_thread(kubelet.set_ready, namespace, "cassandra-1", True)
        recovered, _ = await event_until(events, is_view, timeout_s=60)
        assert isinstance(recovered, View)
        assert recovered.endpoints == (Endpoint(by_pod["cassandra-1"], pod="cassandra-1"),)
