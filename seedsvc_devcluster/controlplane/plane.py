"""One local control plane: etcd, kube-apiserver, kube-controller-manager and CoreDNS composed on loopback."""

from __future__ import annotations

import atexit
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seedsvc_devcluster import build, polling, ports, processes
from seedsvc_devcluster.api_client import http_json, http_ok
from seedsvc_devcluster.controlplane import etcd, tokens
from seedsvc_devcluster.controlplane.apiserver import apiserver_argv
from seedsvc_devcluster.controlplane.controller_manager import READY_PATH, controller_manager_argv
from seedsvc_devcluster.controlplane.coredns import corefile
from seedsvc_devcluster.controlplane.kubeconfig import write_kubeconfig
from seedsvc_devcluster.controlplane.options import LOOPBACK, ControlPlaneError, ControlPlaneOptions
from seedsvc_devcluster.controlplane.pki import KeyPair, Pki, existing_pki, issue_cert, make_pki

_PORT_ATTEMPTS = 3
# Written once everything runs: how a second process (attach) finds the components.
_PORTS_FILE = "ports.json"
_PORT_TAKEN = "address already in use"


def wait_until(
    condition: Callable[[], bool], *, timeout_s: float, what: str, alive: Callable[[], None] | None = None
) -> None:
    """Poll `condition` every 100 ms until true; raise ControlPlaneError after `timeout_s` (or when `alive` raises)."""
    polling.poll(condition, timeout=timeout_s, what=what, alive=alive, error=ControlPlaneError)


@dataclass
class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + CoreDNS on loopback, rooted in `directory`.

    ``start()`` builds the binaries if needed, generates the PKI, starts everything and waits until the
    API server is ready, the controllers run and CoreDNS has synced; ``stop()`` ends every process.
    """

    directory: Path
    options: ControlPlaneOptions = field(default_factory=ControlPlaneOptions)
    bin_dir: Path | None = None

    kubeconfig: Path = field(init=False)
    server: str = field(init=False)
    ca_file: Path = field(init=False)
    dns: tuple[str, int] = field(init=False)
    etcd_url: str = field(init=False)
    startup_seconds: float = field(init=False, default=0.0)

    _components: dict[str, processes.ChildProcess] = field(init=False, default_factory=dict)
    _pki: Pki = field(init=False)
    _admin_tls: ssl.SSLContext = field(init=False)
    _ports: dict[str, int] = field(init=False, default_factory=dict)

    @property
    def cluster_domain(self) -> str:
        return self.options.cluster_domain

    # -- lifecycle --

    def start(self) -> ControlPlane:
        began = time.monotonic()
        self.bin_dir = self.bin_dir or build.ensure_built()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._use_pki(make_pki(self.directory, self.options))
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            atexit.register(self.stop)  # stop() drops it, also after a failed attempt
            self._allocate_ports()
            try:
                self._start_components()
                break
            except BaseException as exc:
                self.stop()
                # A free port can be taken by another process before ours binds it: pick new ones.
                if not (isinstance(exc, ControlPlaneError) and _PORT_TAKEN in str(exc)) or attempt == _PORT_ATTEMPTS:
                    raise
        self.startup_seconds = time.monotonic() - began
        (self.directory / _PORTS_FILE).write_text(json.dumps(self._ports))
        return self

    @classmethod
    def attach(cls, directory: Path, options: ControlPlaneOptions | None = None) -> ControlPlane:
        """A handle on a plane another process started in ``directory`` (``python -m seedsvc_devcluster up``).

        It calls the API and mints tokens like the plane that started it; it owns no process, so
        :meth:`stop` leaves the plane running.
        """
        try:
            saved = json.loads((directory / _PORTS_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ControlPlaneError(f"no running control plane in {directory}: {exc}") from None
        plane = cls(directory, options or ControlPlaneOptions())
        plane._use_pki(existing_pki(directory))
        plane._use_ports({name: int(port) for name, port in saved.items()})
        plane.kubeconfig = directory / "admin.kubeconfig"
        return plane

    def _use_pki(self, pki: Pki) -> None:
        self._pki = pki
        self.ca_file = pki.ca.cert
        self._admin_tls = self.admin_ssl()

    def admin_ssl(self) -> ssl.SSLContext:
        """A new TLS context that trusts this plane's CA and presents the admin client certificate."""
        context = ssl.create_default_context(cafile=str(self._pki.ca.cert))
        context.load_cert_chain(str(self._pki.admin.cert), str(self._pki.admin.key))
        return context

    def _start_components(self) -> None:
        self.kubeconfig = write_kubeconfig(
            self.directory / "admin.kubeconfig",
            server=self.server,
            ca=self.ca_file,
            client=self._pki.admin,
            user="seedsvc-admin",
        )
        self._start_etcd()
        self.start_apiserver()
        self._start_controller_manager()
        if self.options.coredns and self.options.serves_endpointslices:
            self._start_coredns()
        if self.options.scheduler:
            self._start_scheduler()

    def stop(self) -> None:
        """Stop every component, newest first. Safe to call more than once."""
        for name in reversed(list(self._components)):
            self._components.pop(name).stop(self.options.stop_timeout_s)
        atexit.unregister(self.stop)

    def check_alive(self) -> None:
        """Raise ControlPlaneError if any component has exited."""
        for component in list(self._components.values()):
            component.check_alive(ControlPlaneError)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _allocate_ports(self) -> None:
        self._use_ports(
            {
                "etcd-client": ports.free_port(),
                "etcd-peer": ports.free_port(),
                "apiserver": ports.free_port(),
                "coredns": ports.free_port(udp_too=True),
                "coredns-ready": ports.free_port(),
                "scheduler": ports.free_port(),
            }
        )

    def _use_ports(self, allocated: dict[str, int]) -> None:
        self._ports = allocated
        self.server = f"https://{self.options.address}:{self._ports['apiserver']}"
        self.etcd_url = f"http://{LOOPBACK}:{self._ports['etcd-client']}"
        self.dns = (LOOPBACK, self._ports["coredns"])

    def _binary(self, name: str) -> Path:
        assert self.bin_dir is not None, "start() sets bin_dir"
        return self.bin_dir / name

    def _component(self, name: str, argv: list[str], ready: Callable[[], bool], what: str) -> None:
        """Start one component and wait until ``ready``; fails early with its log if it exits."""
        component = processes.ChildProcess(name, argv, self.directory / "logs" / f"{name}.log")
        self._components[name] = component
        component.start()
        wait_until(
            ready,
            timeout_s=self.options.start_timeout_s,
            what=what,
            alive=lambda: component.check_alive(ControlPlaneError),
        )

    def _component_kubeconfig(self, name: str, user: str, client: Any) -> Path:
        return write_kubeconfig(
            self.directory / f"{name}.kubeconfig", server=self.server, ca=self.ca_file, client=client, user=user
        )

    # -- etcd --

    def _start_etcd(self) -> None:
        argv = etcd.etcd_argv(
            self._binary("etcd"),
            self.directory / "etcd",
            client_url=self.etcd_url,
            peer_url=f"http://{LOOPBACK}:{self._ports['etcd-peer']}",
        )
        self._component("etcd", argv, lambda: etcd.etcd_healthy(self.etcd_url), "etcd /health")

    def etcd_revision(self) -> int:
        """Current etcd revision, from the v3 JSON gateway."""
        return etcd.etcd_revision(self.etcd_url)

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision now; returns that revision (see :func:`etcd.compact_etcd`)."""
        return etcd.compact_etcd(self.etcd_url)

    # -- kube-apiserver --

    def start_apiserver(self) -> None:
        """Start (or restart after stop_apiserver()) the API server on the same port with the same PKI."""
        argv = apiserver_argv(
            self._binary("kube-apiserver"),
            directory=self.directory,
            pki=self._pki,
            options=self.options,
            etcd_url=self.etcd_url,
            port=self._ports["apiserver"],
        )
        self._component("kube-apiserver", argv, self._apiserver_ready, "kube-apiserver /readyz")

    def stop_apiserver(self, *, graceful: bool = True) -> None:
        """Stop the API server only; clients see connection refused until start_apiserver().

        graceful=False kills it outright, like a crash: no GOAWAY, watches just break.
        """
        component = self._components.pop("kube-apiserver", None)
        if component is not None:
            component.stop(self.options.stop_timeout_s if graceful else 0.0)

    def _apiserver_ready(self) -> bool:
        try:
            return bool(self.api("GET", self.options.readyz_path, raw=True) == "ok")
        except (OSError, ControlPlaneError):
            return False

    def api(self, method: str, path: str, body: Any = None, *, raw: bool = False) -> Any:
        """One request to the API server as cluster admin: parsed JSON, or text if `raw`."""
        return http_json(
            method, self.server + path, body=body, context=self._admin_tls, raw=raw, error=ControlPlaneError
        )

    def exists(self, path: str) -> bool:
        """True if GET `path` succeeds as admin."""
        try:
            self.api("GET", path)
        except (ControlPlaneError, OSError):
            return False
        return True

    # -- kube-controller-manager --

    def _start_controller_manager(self) -> None:
        kubeconfig = self._component_kubeconfig(
            "kube-controller-manager", "system:kube-controller-manager", self._pki.controller_manager
        )
        argv = controller_manager_argv(
            self._binary("kube-controller-manager"), kubeconfig=kubeconfig, pki=self._pki, options=self.options
        )
        self._component(
            "kube-controller-manager",
            argv,
            lambda: self.exists(READY_PATH),
            "kube-controller-manager (default ServiceAccount)",
        )

    # -- kube-scheduler --

    def _start_scheduler(self) -> None:
        kubeconfig = self._component_kubeconfig("kube-scheduler", "system:kube-scheduler", self._pki.scheduler)
        argv = [
            str(self._binary("kube-scheduler")),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self._ports['scheduler']}",
            "--v=1",
        ]
        self._component("kube-scheduler", argv, self._scheduler_ready, "kube-scheduler /readyz")

    def _scheduler_ready(self) -> bool:
        # Its serving certificate is self-signed, and /readyz needs no credentials.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return http_ok(f"https://{LOOPBACK}:{self._ports['scheduler']}/readyz", context=context)

    # -- CoreDNS --

    def corefile(self, kubeconfig: Path) -> str:
        """Corefile serving the cluster domain from the API, on 127.0.0.1 only."""
        return corefile(
            self.options, kubeconfig=kubeconfig, port=self._ports["coredns"], ready_port=self._ports["coredns-ready"]
        )

    def _start_coredns(self) -> None:
        kubeconfig = self._component_kubeconfig("coredns", "seedsvc:coredns", self._pki.coredns)
        path = self.directory / "Corefile"
        path.write_text(self.corefile(kubeconfig))
        ready_url = f"http://{LOOPBACK}:{self._ports['coredns-ready']}/ready"
        self._component(
            "coredns", [str(self._binary("coredns")), "-conf", str(path)], lambda: http_ok(ready_url), "CoreDNS /ready"
        )

    def issue_cert(
        self,
        directory: Path,
        *,
        stem: str,
        common_name: str,
        organization: str | None = None,
        ip_addresses: tuple[str, ...] = (),
    ) -> KeyPair:
        """A certificate of this plane's CA (a kubelet's serving and client certificate, say)."""
        directory.mkdir(parents=True, exist_ok=True)
        return issue_cert(
            self._pki.ca,
            directory,
            stem=stem,
            common_name=common_name,
            organization=organization,
            ip_addresses=ip_addresses,
        )

    @property
    def ports(self) -> dict[str, int]:
        """The components' ports by name (apiserver, coredns, ...)."""
        return dict(self._ports)

    # -- service-account tokens --

    def mint_token(
        self,
        namespace: str,
        service_account: str,
        *,
        expiration_seconds: int = 3600,
        bound_secret: str | None = None,
    ) -> str:
        """A TokenRequest token (see :func:`tokens.mint_token`)."""
        return tokens.mint_token(
            lambda method, path, body: self.api(method, path, body),
            namespace,
            service_account,
            expiration_seconds=expiration_seconds,
            bound_secret=bound_secret,
        )

    def write_incluster_files(self, namespace: str, service_account: str, directory: Path) -> Path:
        """Write `token`, `ca.crt` and `namespace` as a pod sees them under
        /var/run/secrets/kubernetes.io/serviceaccount; returns `directory`."""
        token = self.mint_token(namespace, service_account)
        return tokens.write_incluster_files(token, self.ca_file, namespace, directory)

    def incluster_env(self) -> dict[str, str]:
        """KUBERNETES_SERVICE_HOST/PORT as a pod would have them, pointing at this API server."""
        return {
            "KUBERNETES_SERVICE_HOST": self.options.address,
            "KUBERNETES_SERVICE_PORT": str(self._ports["apiserver"]),
        }

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running component (for the docs and benchmarks)."""
        return {name: c.rss_bytes() for name, c in self._components.items() if c.process is not None}
