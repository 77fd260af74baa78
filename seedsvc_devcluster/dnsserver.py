"""A real CoreDNS on loopback serving a zone the caller writes, for testing the DNS source.

CoreDNS runs with the ``file`` plugin (https://coredns.io/plugins/file/) serving one zone from a file
this module writes. ``set_records()`` rewrites the file with a higher SOA serial; the plugin's
``reload`` ticker (100 ms here) picks it up, and ``wait_serial()`` waits until CoreDNS answers with the
new serial. Every fault the tests need comes from CoreDNS itself:

- NXDOMAIN: a name that is not in the zone (remove its records).
- SERVFAIL: a CNAME that points to its own owner name; the file plugin refuses to follow it and
  answers SERVFAIL ("A CNAME that points to its own owner name can only loop", plugin/file/lookup.go).
  ``servfail_records()`` writes one.
- REFUSED: a name outside every zone of the server block ("no matching zone" in core/dnsserver).
- timeout: ``pause()`` stops the process with SIGSTOP, so queries queue in the socket and nobody
  answers; ``resume()`` sends SIGCONT. No plugin is needed (the test build has no ``erratic``).

The binary comes from ``seedsvc_devcluster.build.ensure_built()``, the same pinned, cached build as the
control plane's, so CI builds it from a cold cache like everything else.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.rdtypes.ANY.SOA

from seedsvc_devcluster import build, polling, ports, processes

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 20.0
"""CoreDNS answers within a few hundred milliseconds of exec; the bound covers a loaded CI machine."""
RELOAD_INTERVAL = "100ms"
"""How often the file plugin checks the zone's serial: short, so a change is served almost at once."""
STOP_TIMEOUT_S = 5.0


class DnsServerError(RuntimeError):
    """CoreDNS could not be found, started, or did not do what was asked; carries its log tail."""


def coredns_binary() -> Path:
    """The pinned CoreDNS, built (and cached) by seedsvc_devcluster/build.py if needed."""
    try:
        bin_dir = build.ensure_built()
    except build.BuildError as exc:
        raise DnsServerError(f"cannot build CoreDNS from seedsvc_devcluster/go: {exc}") from exc
    binary = bin_dir / "coredns"
    if not binary.is_file():
        raise DnsServerError(f"seedsvc_devcluster/build.py reported {bin_dir} but it holds no coredns binary")
    return binary


# --- zone file lines ----------------------------------------------------------------------------------


def a(name: str, address: str, ttl: int = 5) -> str:
    return f"{name} {ttl} IN A {address}"


def aaaa(name: str, address: str, ttl: int = 5) -> str:
    return f"{name} {ttl} IN AAAA {address}"


def srv(name: str, target: str, port: int = 9042, ttl: int = 5, priority: int = 0, weight: int = 10) -> str:
    return f"{name} {ttl} IN SRV {priority} {weight} {port} {target}"


def cname(name: str, target: str, ttl: int = 5) -> str:
    return f"{name} {ttl} IN CNAME {target}"


def servfail_records(name: str) -> list[str]:
    """Records that make CoreDNS's file plugin answer SERVFAIL for ``name``, whatever the type."""
    return [cname(name, name)]


# --- the server ---------------------------------------------------------------------------------------


class CoreDns:
    """One CoreDNS process serving ``origin`` from a zone file in ``directory``.

    Use as a context manager or call ``start()``/``stop()``; ``stop()`` is safe to call twice and
    also ends a paused process.
    """

    def __init__(
        self,
        binary: Path,
        directory: Path,
        *,
        zones: tuple[str, ...] = ("cluster.local.",),
        soa_minimum: int = 1,
    ) -> None:
        self.binary = binary
        self.directory = directory
        self.zones = tuple(z if z.endswith(".") else z + "." for z in zones)
        self.origin = self.zones[0]
        """The zone ``set_records()`` writes unless told otherwise."""
        self.soa_minimum = soa_minimum
        """Negative-caching TTL (RFC 2308): what NXDOMAIN/NODATA answers say to cache."""
        self.serial = 0
        """The serial of the last zone file written (one counter for all zones)."""
        self.port = 0
        self.corefile = directory / "Corefile"
        self.log_path = directory / "coredns.log"
        self._process: processes.ChildProcess | None = None

    def zone_file(self, origin: str) -> Path:
        return self.directory / f"db.{origin.rstrip('.')}"

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)``, the shape of ``Settings.dns_nameserver``."""
        return (LOOPBACK, self.port)

    def __enter__(self) -> CoreDns:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, records: Iterable[str] = (), *, other_zones: dict[str, Iterable[str]] | None = None) -> CoreDns:
        """Serve ``records`` in the first zone and ``other_zones[origin]`` in the others."""
        self.directory.mkdir(parents=True, exist_ok=True)
        other_zones = other_zones or {}
        for origin in self.zones:
            self._write_zone(origin, records if origin == self.origin else other_zones.get(origin, ()))
        # The port is free when probed and taken by CoreDNS a moment later; another process may win
        # the race, so a start that fails to bind is tried again on a new port.
        for _ in range(3):
            self.port = ports.free_port(udp_too=True)
            self.corefile.write_text(self._corefile())
            self._spawn()
            try:
                self._wait_answering()
                return self
            except DnsServerError:
                log = self.log_tail()
                self.stop()
                if "address already in use" not in log:
                    raise
        raise DnsServerError(f"CoreDNS could not bind a free port; last log lines:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        process.stop(STOP_TIMEOUT_S)  # sends SIGCONT first: a paused process would never see SIGTERM

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def pause(self) -> None:
        """Stop answering (SIGSTOP): every query times out until ``resume()``."""
        assert self._process is not None, "CoreDNS is not running"
        self._process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None, "CoreDNS is not running"
        self._process.signal(signal.SIGCONT)

    def set_records(self, records: Iterable[str], *, origin: str | None = None) -> int:
        """Replace every record but SOA/NS of a zone with ``records``; returns the new serial. CoreDNS
        serves them within the reload interval: ``await wait_serial(serial)`` to know when."""
        self._write_zone(origin or self.origin, records)
        return self.serial

    async def changed(self, records: Iterable[str], *, origin: str | None = None) -> None:
        """``set_records()`` and wait until CoreDNS serves them."""
        origin = origin or self.origin
        await self.wait_serial(self.set_records(records, origin=origin), origin=origin)

    async def wait_serial(self, serial: int, *, origin: str | None = None, timeout_s: float = 10.0) -> None:
        """Return once CoreDNS answers SOA with ``serial`` (or later); raise after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            seen = await self.served_serial(origin or self.origin)
            if seen is not None and seen >= serial:
                return
            if time.monotonic() > deadline:
                raise DnsServerError(
                    f"CoreDNS still serves serial {seen} {timeout_s:g}s after serial {serial} was written; "
                    f"last log lines:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    async def served_serial(self, origin: str) -> int | None:
        query = dns.message.make_query(origin, dns.rdatatype.SOA)
        try:
            response = await dns.asyncquery.udp(query, LOOPBACK, timeout=0.5, port=self.port)
        except dns.exception.Timeout:
            return None
        for rrset in response.answer:
            for rdata in rrset:
                if isinstance(rdata, dns.rdtypes.ANY.SOA.SOA):
                    return int(rdata.serial)
        return None

    def log_tail(self, lines: int = 30) -> str:
        return processes.log_tail(self.log_path, lines)

    # -- internals --

    def _corefile(self) -> str:
        # Only these zones on this port: names outside them get REFUSED from the server itself.
        keys = " ".join(f"{origin}:{self.port}" for origin in self.zones)
        files = "".join(
            f"    file {self.zone_file(origin)} {origin} {{\n        reload {RELOAD_INTERVAL}\n    }}\n"
            for origin in self.zones
        )
        return f"{keys} {{\n    bind {LOOPBACK}\n    errors\n{files}}}\n"

    def _write_zone(self, origin: str, records: Iterable[str]) -> None:
        self.serial += 1
        lines = [
            f"$ORIGIN {origin}",
            f"@ 3600 IN SOA ns.dns.{origin} hostmaster.{origin} {self.serial} 7200 1800 86400 {self.soa_minimum}",
            f"@ 3600 IN NS ns.dns.{origin}",
            f"ns.dns 3600 IN A {LOOPBACK}",
            *records,
        ]
        # Written aside and renamed: the reload ticker must never parse half a file.
        path = self.zone_file(origin)
        scratch = path.with_name(path.name + ".tmp")
        scratch.write_text("\n".join(lines) + "\n")
        scratch.replace(path)

    def _spawn(self) -> None:
        argv = [str(self.binary), "-conf", str(self.corefile)]
        self._process = processes.ChildProcess("coredns", argv, self.log_path, cwd=self.directory).start()
        atexit.register(self.stop)

    def _wait_answering(self) -> None:
        query = dns.message.make_query(self.origin, dns.rdatatype.SOA)

        def alive() -> None:
            if self._process is None or not self._process.running():
                raise DnsServerError(f"CoreDNS exited at start; last log lines:\n{self.log_tail()}")

        def answers() -> bool:
            try:
                dns.query.udp(query, LOOPBACK, timeout=0.2, port=self.port)
            except (dns.exception.Timeout, OSError):
                return False
            return True

        try:
            polling.poll(answers, timeout=START_TIMEOUT_S, what="CoreDNS to answer", interval=0.05, alive=alive)
        except polling.PollTimeout as exc:
            raise DnsServerError(f"{exc}; last log lines:\n{self.log_tail()}") from None


@contextlib.contextmanager
def running_coredns(
    binary: Path, directory: Path, records: Iterable[str] = (), *, zones: tuple[str, ...] = ("cluster.local.",)
) -> Iterator[CoreDns]:
    """A started :class:`CoreDns` that is stopped on exit, whatever happens in between."""
    server = CoreDns(binary, directory, zones=zones)
    try:
        yield server.start(records)
    finally:
        server.stop()
