"""`make demo DEMO_ARGS=--multi-dc`: two datacenters, deploy/overlays/multi-dc/dc1 and dc2, on one machine.

Both overlays are applied to two namespaces of one local control plane; every pod runs a real
`seedsvc serve` (and, without ``--light``, a real Cassandra 5.0 node). The peers' Service of each DC
(``cassandra-seedsvc``, a ClusterIP no host process can reach) is stood in for by a TCP forwarder on a
fixed loopback address to one of that DC's sidecars; cutting it is how the tour makes a peer DC
unreachable. The tour prints what every pod's sidecar serves and the ``datacenters`` JSON of one pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from seedsvc_devcluster import build, polling
from seedsvc_devcluster.faults import TcpProxy
from seedsvc_devcluster.kubelet import KubeletOptions
from seedsvc_devcluster.local_cluster import LocalCluster
from seedsvc_devcluster.sidecar_process import SidecarProcess
from seedsvc_devcluster.statefulset_run import SIDECARS_TIMEOUT_S, _sidecars_ready, describe
from seedsvc_devcluster.system import NODE_TIMEOUT_S, System, require_cassandra_prerequisites, statefulset_in

DATACENTERS = ("dc1", "dc2")
REPLICAS = {True: 2, False: 3}
"""Pods per DC, with Cassandra (four JVMs are plenty for two cores) and without."""
STALE_TIMEOUT_S = 60.0
NO_ENDPOINT = ("127.0.0.1", 9)
"""Where a Service stand-in without endpoints forwards: nothing listens there, so connections are refused."""

T = TypeVar("T")


@dataclass(frozen=True)
class Addresses:
    first_pod_ip: str = "127.0.56.1"
    """Pods of both DCs from here: clear of the tests' ranges and of the one-DC demo's 127.0.50.x."""
    service_net: str = "127.0.57"
    """Each DC's peers' Service stand-in listens on <service_net>.<DC number>."""

    def service_ip(self, dc: str) -> str:
        return f"{self.service_net}.{DATACENTERS.index(dc) + 1}"


def namespace(dc: str) -> str:
    return f"cassandra-{dc}"


def peer_of(dc: str) -> str:
    return DATACENTERS[1 - DATACENTERS.index(dc)]


@dataclass
class ServiceStandIns:
    """One :class:`TcpProxy` per DC on its own event loop thread: the DC's peers' Service."""

    addresses: Addresses
    proxies: dict[str, TcpProxy] = field(default_factory=dict)
    routes: dict[str, tuple[str, int]] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ServiceStandIns:
        self._thread = threading.Thread(target=self._loop.run_forever, name="service-stand-ins", daemon=True)
        self._thread.start()
        for dc in DATACENTERS:
            proxy = TcpProxy(*NO_ENDPOINT, listen_host=self.addresses.service_ip(dc))
            self.proxies[dc] = self._call(proxy.start())
        return self

    def __exit__(self, *_exc: object) -> None:
        for proxy in self.proxies.values():
            self._call(proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def url(self, dc: str) -> str:
        return f"http://{self.addresses.service_ip(dc)}:{self.proxies[dc].port}"

    def route(self, dc: str, sidecar: SidecarProcess) -> None:
        """Send the DC's Service to ``sidecar`` (its cassandra-0's)."""
        assert sidecar.base_url is not None
        host, port = sidecar.base_url.removeprefix("http://").rsplit(":", 1)
        self.routes[dc] = (host, int(port))
        self._loop.call_soon_threadsafe(_retarget, self.proxies[dc], self.routes[dc], False)

    def cut(self, dc: str) -> None:
        """The DC's seedsvc unreachable (its Service without endpoints): open connections cut, new
        ones refused at once. (Held connections would only fail after a whole long-poll wait.)"""
        self._loop.call_soon_threadsafe(_retarget, self.proxies[dc], NO_ENDPOINT, True)

    def heal(self, dc: str) -> None:
        self._loop.call_soon_threadsafe(_retarget, self.proxies[dc], self.routes[dc], False)


def _retarget(proxy: TcpProxy, upstream: tuple[str, int], cut: bool) -> None:
    proxy.upstream_host, proxy.upstream_port = upstream
    if cut:
        proxy.cut()


def first_sidecar(system: System) -> SidecarProcess:
    proc = system.runner.processes("cassandra-0")
    assert proc is not None, system.runner.log()
    return proc.sidecar


def wait_first_sidecar(system: System) -> SidecarProcess:
    polling.poll(
        lambda: system.runner.processes("cassandra-0") is not None,
        timeout=SIDECARS_TIMEOUT_S,
        what=f"cassandra-0's sidecar in {system.namespace}",
        interval=0.5,
    )
    return first_sidecar(system)


def datacenters_json(system: System) -> dict[str, Any]:
    """``datacenters`` of cassandra-0's ``/seeds?format=json``, each DC's seeds, stale flag and reason."""
    answer = first_sidecar(system).get("/seeds?format=json")
    if answer.status != 200:
        return {}
    found: dict[str, Any] = json.loads(answer.body).get("datacenters", {})
    return {name: {k: v for k, v in dc.items() if k in ("seeds", "stale", "reason")} for name, dc in found.items()}


def show(step: str, systems: dict[str, System]) -> None:
    print(f"\n== {step}", flush=True)
    for dc, system in systems.items():
        print(f"{dc} (namespace {system.namespace}):")
        print("\n".join(describe(system)))
    for dc, system in systems.items():
        print(f"{dc} cassandra-0 datacenters: {json.dumps(datacenters_json(system))}", flush=True)


def wait_formed(system: System, replicas: int, cassandra: bool) -> None:
    if cassandra:
        system.wait_for_ring(replicas, timeout=NODE_TIMEOUT_S * replicas)
    else:
        polling.poll(
            lambda: _sidecars_ready(system, replicas),
            timeout=SIDECARS_TIMEOUT_S,
            what=f"{replicas} pods in {system.namespace} with ready sidecars",
            interval=0.5,
        )


def wait_peer_stale(system: System, peer: str, stale: bool) -> None:
    def check() -> bool:
        status = datacenters_json(system).get(peer)
        return status is not None and status["stale"] is stale

    polling.poll(
        check,
        timeout=STALE_TIMEOUT_S,
        what=f"{peer} {'stale' if stale else 'fresh'} in {system.namespace}",
        interval=0.5,
    )


def tour(
    cluster: LocalCluster,
    services: ServiceStandIns,
    workdir: Path,
    *,
    cassandra: bool,
    after: Callable[[dict[str, System]], None],
) -> dict[str, list[str]]:
    """dc1, then dc2 while dc1 runs, then dc1 unreachable and back. Returns each DC's last pod lines."""
    replicas = REPLICAS[cassandra]
    systems: dict[str, System] = {}
    with contextlib.ExitStack() as stack:
        for dc in DATACENTERS:
            peer = peer_of(dc)
            cluster.create_namespace(namespace(dc))
            stack.callback(cluster.delete_namespace, namespace(dc))
            system = stack.enter_context(
                statefulset_in(
                    cluster.plane,
                    cluster.kubelet,
                    namespace(dc),
                    workdir / dc,
                    cassandra=cassandra,
                    overlay=f"multi-dc/{dc}",
                    # The overlay's peer URL names a cluster-internal Service: here, its stand-in.
                    sidecar_env={"SEEDSVC_PEERS": f"{peer}={services.url(peer)}", "SEEDSVC_BACKOFF_MAX": "2"},
                )
            )
            if replicas != 3:
                system.kubectl_run("scale", "statefulset/cassandra", f"--replicas={replicas}")
            systems[dc] = system
            print(f"\napplied deploy/overlays/multi-dc/{dc} to namespace {namespace(dc)} ({replicas} pods)", flush=True)
            services.route(dc, wait_first_sidecar(system))
            wait_formed(system, replicas, cassandra)
            if dc == "dc1":
                show(
                    "dc1 alone: the bootstrap DC; its cassandra-0 seeded itself, dc2 not there yet (stale, no seeds)",
                    systems,
                )
        wait_peer_stale(systems["dc1"], "dc2", False)
        show(
            "dc2 created while dc1 runs: it joined through dc1's seeds (not the bootstrap DC, none of its pods "
            "may seed itself); each pod's list is its own DC's seeds, then the peer DC's",
            systems,
        )
        services.cut("dc1")
        wait_peer_stale(systems["dc2"], "dc1", True)
        show("dc1's seedsvc unreachable: dc2 keeps dc1's last seeds, marked stale; local serving goes on", systems)
        services.heal("dc1")
        wait_peer_stale(systems["dc2"], "dc1", False)
        show("dc1 reachable again: fresh", systems)
        after(systems)
        return {dc: describe(system) for dc, system in systems.items()}


def hints(systems: dict[str, System], services: ServiceStandIns) -> None:
    print("\nTry it yourself:")
    for dc, system in systems.items():
        print(f"  curl -s {first_sidecar(system).seeds_url}'?format=json'      # {dc} cassandra-0")
        print(f"  curl -s '{services.url(dc)}/seeds?scope=datacenter'   # {dc}'s seed set, as its peers ask")
    print(f"  logs: {next(iter(systems.values())).workdir.parent}")


@contextlib.contextmanager
def running(workdir: Path, *, cassandra: bool, addresses: Addresses) -> Iterator[tuple[LocalCluster, ServiceStandIns]]:
    if cassandra:
        require_cassandra_prerequisites()
    print("building or reusing the control plane binaries (cached under ~/.cache/seedsvc) ...", flush=True)
    options = KubeletOptions(probe=cassandra, first_pod_ip=addresses.first_pod_ip, probe_timeout_s=1.0)
    with (
        LocalCluster(workdir, kubelet_options=options, bin_dir=build.ensure_built()) as cluster,
        ServiceStandIns(addresses) as services,
    ):
        print(f"control plane up in {cluster.startup_seconds:.1f}s: {cluster.plane.server}", flush=True)
        yield cluster, services


def main(
    workdir: Path, *, cassandra: bool, hold: Callable[[], None] | None, addresses: Addresses = Addresses()
) -> dict[str, list[str]]:
    """The whole two-DC tour; ``hold`` (if given) runs before tearing down."""
    started = time.monotonic()
    with running(workdir, cassandra=cassandra, addresses=addresses) as (cluster, services):

        def after(systems: dict[str, System]) -> None:
            if cassandra:
                print("\nnodetool status (dc1 cassandra-0):\n" + systems["dc1"].node("cassandra-0").nodetool("status"))
            hints(systems, services)
            print(f"(tour took {time.monotonic() - started:.0f}s)", flush=True)
            if hold is not None:
                hold()

        return tour(cluster, services, workdir, cassandra=cassandra, after=after)
