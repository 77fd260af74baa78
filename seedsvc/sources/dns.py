"""DNS source: SRV or A/AAAA answers of one nameserver, turned into endpoint records.

Every round sends fresh queries straight to one nameserver (``dns.asyncquery``: UDP, TCP when the
answer is truncated) and yields the complete set of addresses it answered. There is no resolver cache
in this process: the point of asking again is to see the change, and a second cache (positive or
negative) on top of the cluster DNS's own would only add delay. The answer's smallest TTL, clamped to
``[dns_min_refresh, dns_max_refresh]``, decides when to ask again.

Two modes (``DnsSettings.srv_port_name``):

- A/AAAA: ``<dns-name>`` for A and AAAA at once. A headless Service publishes one address per ready
  pod; the records carry no pod name, so selection falls back to address order.
- SRV: ``_<port-name>._tcp.<dns-name>``. Each target's first label is the pod's hostname
  (``cassandra-0.cassandra.ns.svc.cluster.local.`` -> ``cassandra-0``), so StatefulSet ordinals
  work. Addresses come from the additional section when the server put them there (CoreDNS does),
  else from A/AAAA lookups of the targets.

DNS says nothing about readiness (only ready endpoints are published, unless the Service sets
``publishNotReadyAddresses``) or zones: every record is ``ready=True, zone=None``.

Outcomes of a round:

- NOERROR with records: a :class:`View`; only yielded when the set differs from the last one yielded,
  or when a failure was yielded since (so the consumer learns that the failure is over).
- NOERROR without records (NODATA): an empty :class:`View`. That is what the server says: the name
  exists and has no ready endpoint. Note that CoreDNS's kubernetes plugin answers NXDOMAIN, not
  NODATA, for a headless Service without ready endpoints (see docs/dns.md), which lands below.
- NXDOMAIN, SERVFAIL, REFUSED, other rcodes, timeouts, unreachable server, malformed answers: a
  :class:`Failure` with a stable ``reason``, then a retry after a capped, jittered backoff that is
  reset by the next success.

Records that cannot be used (an SRV target without any address, a ``.`` target, an address that is
not an IP literal) are counted in ``View.skipped``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.SRV
import dns.rrset

from seedsvc.records import Endpoint, InvalidAddress, merge_duplicates, seed_address
from seedsvc.settings import RESOLV_CONF, ConfigError, Settings
from seedsvc.sources.backoff import Backoff
from seedsvc.sources.checks import Check
from seedsvc.sources.events import Failure, SourceEvent, View
from seedsvc.values import is_ip_literal

log = logging.getLogger("seedsvc.sources.dns")

_T = TypeVar("_T")

DNS_PORT = 53

ADDRESS_TYPES: tuple[dns.rdatatype.RdataType, ...] = (dns.rdatatype.A, dns.rdatatype.AAAA)

# 1232 bytes is the EDNS buffer size recommended by DNS Flag Day 2020 (https://dnsflagday.net/2020/):
# large enough for the SRV answer and additional records of a few dozen pods in one UDP datagram,
# small enough to avoid IP fragmentation. Larger answers come back truncated and are asked again over
# TCP.
EDNS_PAYLOAD = 1232

# Target lookups (SRV answers without additional records) run concurrently, but a Service with
# hundreds of pods must not open hundreds of sockets at once.
MAX_CONCURRENT_LOOKUPS = 16

# The rcodes every operator knows, with the labels the metrics use; any other rcode is labelled with
# its own lower-case name (formerr, notimp, ...), a small closed set.
_RCODE_REASONS: dict[dns.rcode.Rcode, str] = {
    dns.rcode.NXDOMAIN: "nxdomain",
    dns.rcode.SERVFAIL: "servfail",
    dns.rcode.REFUSED: "refused",
}


class DnsError(Exception):
    """One lookup could not produce an answer to use; ``reason`` becomes :attr:`Failure.reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of one successful round."""

    endpoints: tuple[Endpoint, ...]
    skipped: int
    ttl: int
    """The smallest TTL the answer rests on (answers, CNAMEs, additional records, and the negative
    TTL of a NODATA part, RFC 2308 section 5)."""


@dataclass(frozen=True, slots=True)
class Addresses:
    """The addresses one name resolved to, as far as one answer tells."""

    addresses: tuple[str, ...]
    skipped: int
    ttl: int


# --- pure: answers in, records out --------------------------------------------------------------------


def refresh_after(ttl: int, *, minimum: float, maximum: float) -> float:
    """Seconds until the next round: the TTL clamped to ``[minimum, maximum]`` (TTL 0 -> minimum).

    The lower bound keeps a zero or tiny TTL from turning into a query storm against the cluster
    DNS; the upper bound keeps a long TTL from hiding a change for longer than operators expect.
    """
    return min(maximum, max(minimum, float(ttl)))


def check_rcode(response: dns.message.Message, *, server: str, what: str) -> None:
    """Raise :class:`DnsError` unless ``response`` is NOERROR."""
    rcode = response.rcode()
    if rcode == dns.rcode.NOERROR:
        return
    reason = _RCODE_REASONS.get(rcode, dns.rcode.to_text(rcode).lower())
    raise DnsError(reason, f"{server} answered {dns.rcode.to_text(rcode)} for {what}")


def answer_rrset(response: dns.message.Message, *, what: str) -> tuple[dns.rrset.RRset | None, int]:
    """The answer RRset after following CNAMEs, or None (NODATA), and the minimum TTL involved."""
    if not isinstance(response, dns.message.QueryMessage):
        raise DnsError("bad_response", f"answer for {what} is not a query response")
    try:
        chain = response.resolve_chaining()
    except (dns.exception.DNSException, dns.message.NotQueryResponse) as exc:
        raise DnsError("bad_response", f"unusable answer for {what}: {_describe(exc)}") from None
    return chain.answer, chain.minimum_ttl


def addresses_from_answer(response: dns.message.Message, *, what: str) -> Addresses:
    """The A or AAAA addresses of a NOERROR answer (empty for NODATA), normalised."""
    rrset, ttl = answer_rrset(response, what=what)
    if rrset is None:
        return Addresses((), 0, ttl)
    return _addresses_of(rrset, ttl)


def additional_addresses(response: dns.message.Message, target: dns.name.Name) -> Addresses | None:
    """A/AAAA records for ``target`` in the additional section, None when there are none."""
    found: list[str] = []
    skipped = 0
    ttl: int | None = None
    for rdtype in ADDRESS_TYPES:
        rrset = _find(response.additional, target, rdtype)
        if rrset is None:
            continue
        part = _addresses_of(rrset, rrset.ttl)
        found += part.addresses
        skipped += part.skipped
        ttl = part.ttl if ttl is None else min(ttl, part.ttl)
    if ttl is None:
        return None
    return Addresses(tuple(found), skipped, ttl)


def srv_targets(response: dns.message.Message, *, what: str) -> tuple[tuple[dns.name.Name, ...], int, int]:
    """The distinct targets of an SRV answer in answer order, how many records were unusable, and the
    minimum TTL. A target of ``.`` means "decidedly not available" (RFC 2782) and is skipped."""
    rrset, ttl = answer_rrset(response, what=what)
    if rrset is None:
        return (), 0, ttl
    targets: dict[dns.name.Name, None] = {}
    skipped = 0
    for rdata in rrset:
        if not isinstance(rdata, dns.rdtypes.IN.SRV.SRV) or rdata.target == dns.name.root:
            skipped += 1
            continue
        targets.setdefault(rdata.target, None)
    return tuple(targets), skipped, ttl


def pod_of(target: dns.name.Name, address: str) -> str | None:
    """The pod hostname in an SRV target: its first label, unless that label is only the address
    with dashes, which is how CoreDNS names endpoints that have no hostname
    (``endpointHostname`` in plugin/kubernetes/kubernetes.go) and would fake an ordinal."""
    if len(target.labels) < 2:  # the root name has no first label
        return None
    label = target.labels[0].decode("ascii", errors="replace").lower()
    return None if label in (_dashed(address), "") else label


def endpoints_for_target(target: dns.name.Name, addresses: Iterable[str]) -> list[Endpoint]:
    return [Endpoint(address=address, pod=pod_of(target, address)) for address in addresses]


def _dashed(address: str) -> str:
    # CoreDNS: IPv4 dots and IPv6 colons become dashes; an IPv6 text ending in "::" gets a "0".
    dashed = address.replace(".", "-").replace(":", "-")
    return dashed + "0" if dashed.endswith("-") else dashed


def _addresses_of(rrset: dns.rrset.RRset, ttl: int) -> Addresses:
    found: list[str] = []
    skipped = 0
    for rdata in rrset:
        try:
            # No node can be at 0.0.0.0, ::, a multicast or the broadcast address: skipped like junk.
            found.append(seed_address(str(getattr(rdata, "address", ""))))
        except InvalidAddress:
            skipped += 1
    return Addresses(tuple(found), skipped, ttl)


def _find(
    section: list[dns.rrset.RRset], name: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype and rrset.rdclass == dns.rdataclass.IN:
            return rrset
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- configuration ------------------------------------------------------------------------------------


def nameserver_from_resolv_conf(path: Path) -> str | None:
    """The first ``nameserver`` line of a resolv.conf, as resolv.conf(5) tells the libc resolver."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                ipaddress.ip_address(fields[1])
            except ValueError:
                continue
            return fields[1]
    return None


def _server_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- I/O ----------------------------------------------------------------------------------------------

Exchange = Callable[[dns.message.Message], Awaitable[dns.message.Message]]
"""Send one query to the nameserver and return its response (a test seam)."""


class DnsSource:
    """Polls one nameserver for the seed name; see the module docstring for the contract."""

    def __init__(
        self,
        settings: Settings,
        *,
        resolv_conf: Path = Path(RESOLV_CONF),
        exchange: Exchange | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Raises :class:`ConfigError` when no nameserver is configured and resolv.conf names none."""
        if settings.dns.nameserver is not None:
            self._host, self._port = settings.dns.nameserver
            if not is_ip_literal(self._host):
                # settings.load() resolves names; Settings built by hand must do the same.
                raise ConfigError(f"SEEDSVC_DNS_NAMESERVER must be an IP address here, not {self._host!r}")
        else:
            host = nameserver_from_resolv_conf(resolv_conf)
            if host is None:
                raise ConfigError(
                    f"SEEDSVC_DNS_NAMESERVER is not set and {resolv_conf} has no usable nameserver line; "
                    "set --dns-nameserver"
                )
            self._host, self._port = host, DNS_PORT
        self._settings = settings
        self._server = _server_text(self._host, self._port)
        self._dns_name = dns.name.from_text(settings.resolved_dns_name)
        self._srv_name = (
            dns.name.from_text(f"_{settings.dns.srv_port_name}._tcp.{settings.resolved_dns_name}")
            if settings.dns.srv_port_name
            else None
        )
        self._exchange = exchange or self._udp_with_tcp_fallback
        # The first retry comes after about the shortest refresh: as soon as a healthy round would.
        self._backoff = backoff or Backoff(
            initial=min(settings.dns.min_refresh, settings.discovery.backoff_max),
            maximum=settings.discovery.backoff_max,
        )
        self._lookups = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

    @property
    def name(self) -> str:
        return "dns"

    @property
    def server(self) -> str:
        """``host:port`` of the nameserver asked, for logs and ``seedsvc check``."""
        return self._server

    @property
    def query_name(self) -> str:
        """The name this source asks for (the SRV name in SRV mode)."""
        return (self._srv_name or self._dns_name).to_text()

    async def updates(self) -> AsyncIterator[SourceEvent]:
        """Resolve forever; see the module docstring for what is yielded when."""
        last: tuple[tuple[Endpoint, ...], int] | None = None
        while True:
            try:
                resolution = await self.resolve()
            except DnsError as exc:
                delay = self._backoff.next_delay()
                # Whatever comes next is news to the consumer, which has marked its list stale.
                last = None
                yield Failure(exc.reason, exc.detail, retry_in=delay)
                await asyncio.sleep(delay)
                continue
            self._backoff.reset()
            current = (resolution.endpoints, resolution.skipped)
            if current != last:
                last = current
                if resolution.skipped:
                    log.warning("%s: %d DNS records unusable", self.query_name, resolution.skipped)
                yield View(resolution.endpoints, skipped=resolution.skipped)
            await asyncio.sleep(
                refresh_after(
                    resolution.ttl,
                    minimum=self._settings.dns.min_refresh,
                    maximum=self._settings.dns.max_refresh,
                )
            )

    async def resolve(self) -> Resolution:
        """One round of queries; raises :class:`DnsError` when it cannot give the complete set."""
        if self._srv_name is None:
            found = await self._addresses(self._dns_name, missing_is_error=True)
            endpoints = merge_duplicates([Endpoint(address=a) for a in found.addresses])
            return Resolution(endpoints, found.skipped, found.ttl)
        return await self._resolve_srv(self._srv_name)

    async def _resolve_srv(self, name: dns.name.Name) -> Resolution:
        what = f"{name.to_text()} SRV"
        response = await self._query(name, dns.rdatatype.SRV)
        check_rcode(response, server=self._server, what=what)
        targets, skipped, ttl = srv_targets(response, what=what)
        endpoints: list[Endpoint] = []
        unresolved: list[dns.name.Name] = []
        for target in targets:
            extra = additional_addresses(response, target)
            if extra is None:
                unresolved.append(target)
                continue
            endpoints += endpoints_for_target(target, extra.addresses)
            skipped += extra.skipped + (0 if extra.addresses else 1)
            ttl = min(ttl, extra.ttl)
        looked_up = await _gather_first_error(
            self._addresses(target, missing_is_error=False) for target in unresolved
        )
        for target, found in zip(unresolved, looked_up, strict=True):
            endpoints += endpoints_for_target(target, found.addresses)
            skipped += found.skipped + (0 if found.addresses else 1)
            ttl = min(ttl, found.ttl)
        return Resolution(merge_duplicates(endpoints), skipped, ttl)

    async def _addresses(self, name: dns.name.Name, *, missing_is_error: bool) -> Addresses:
        """A and AAAA of ``name`` together. NXDOMAIN is an error for the seed name itself; for an SRV
        target it only means the target has no address (one skipped record)."""
        async with self._lookups:
            responses = await _gather_first_error(self._query(name, rdtype) for rdtype in ADDRESS_TYPES)
        found: list[str] = []
        skipped = 0
        ttl: int | None = None
        for rdtype, response in zip(ADDRESS_TYPES, responses, strict=True):
            what = f"{name.to_text()} {rdtype.name}"
            if not missing_is_error and response.rcode() == dns.rcode.NXDOMAIN:
                part = Addresses((), 0, answer_rrset(response, what=what)[1])
            else:
                check_rcode(response, server=self._server, what=what)
                part = addresses_from_answer(response, what=what)
            found += part.addresses
            skipped += part.skipped
            ttl = part.ttl if ttl is None else min(ttl, part.ttl)
        assert ttl is not None  # ADDRESS_TYPES is not empty
        return Addresses(tuple(found), skipped, ttl)

    async def _query(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
        what = f"{name.to_text()} {rdtype.name}"
        try:
            # dnspython's own timeout covers each socket operation; this one bounds the whole
            # exchange (UDP, then TCP after truncation) by the one setting.
            async with asyncio.timeout(self._settings.dns.timeout):
                response = await self._exchange(query)
        except (TimeoutError, dns.exception.Timeout):
            raise DnsError(
                "timeout", f"no answer from {self._server} for {what} within {self._settings.dns.timeout:g}s"
            ) from None
        except OSError as exc:
            raise DnsError("unreachable", f"cannot query {self._server} for {what}: {_describe(exc)}") from None
        except dns.exception.DNSException as exc:
            # BadResponse (answer to another question), FormError, ShortHeader, TrailingJunk, ...
            detail = f"malformed answer from {self._server} for {what}: {_describe(exc)}"
            raise DnsError("bad_response", detail) from None
        if not response.flags & dns.flags.QR:
            raise DnsError("bad_response", f"{self._server} sent a query, not an answer, for {what}")
        return response

    async def _udp_with_tcp_fallback(self, query: dns.message.Message) -> dns.message.Message:
        response, _ = await dns.asyncquery.udp_with_fallback(
            query, self._host, timeout=self._settings.dns.timeout, port=self._port
        )
        return response


async def diagnose(settings: Settings, *, resolv_conf: Path = Path(RESOLV_CONF)) -> list[Check]:
    """``seedsvc check`` for the DNS source: is a nameserver configured, and does it answer usefully?"""
    try:
        source = DnsSource(settings, resolv_conf=resolv_conf)
    except ConfigError as exc:
        return [Check("DNS nameserver", False, str(exc))]
    checks = [Check("DNS nameserver", True, source.server)]
    try:
        resolution = await source.resolve()
    except DnsError as exc:
        checks.append(Check(f"DNS answers {source.query_name}", False, f"{exc.reason}: {exc.detail}"))
        return checks
    addresses = ",".join(e.address for e in resolution.endpoints)
    detail = f"{len(resolution.endpoints)} addresses ({addresses or 'none: no ready endpoint'})"
    if resolution.skipped:
        detail += f", {resolution.skipped} unusable records"
    checks.append(Check(f"DNS answers {source.query_name}", bool(resolution.endpoints), detail))
    return checks


async def _gather_first_error(awaitables: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await all; if any failed, raise the first failure in argument order (a deterministic reason).

    The others are awaited to completion rather than cancelled: each is bounded by the DNS timeout.
    """
    results = await asyncio.gather(*awaitables, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if not isinstance(r, BaseException)]
