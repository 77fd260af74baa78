"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager, CoreDNS.

From pytest use the ``control_plane`` fixture (tests/cluster_fixtures.py). From a shell::

    python3 -m seedsvc_devcluster.controlplane up --dir /tmp/cp [--kubelet] [--no-watch-cache] ...

prints where the admin kubeconfig is and runs until SIGINT/SIGTERM, then tears everything down.

Everything listens on 127.0.0.1 on free ports. Processes run in their own process groups, die with the
process that started them (PR_SET_PDEATHSIG) and are stopped by ``stop()``, by an atexit hook and by
the fixture finaliser, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes.client import ApiClient

from seedsvc_devcluster import build

LOOPBACK = "127.0.0.1"

# The controllers the tests rely on, by their kube-controller-manager names
# (cmd/kube-controller-manager/names). Node lifecycle, IPAM and the rest stay off: there are no real
# nodes, and anything that would try to reach one must not run.
DEFAULT_CONTROLLERS: tuple[str, ...] = (
    "statefulset-controller",
    "endpointslice-controller",
    "endpoints-controller",  # v1 Endpoints, for seedsvc's fallback path
    "serviceaccount-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "root-ca-certificate-publisher-controller",
    "clusterrole-aggregation-controller",  # so the built-in admin/edit/view roles are complete
)


class ControlPlaneError(RuntimeError):
    """A component failed to start or stop; the message carries the tail of its log."""


@dataclass(frozen=True)
class ControlPlaneOptions:
    """Knobs for the fault and performance cases. Defaults are those of a production-like cluster."""

    watch_cache: bool = True
    """False serves every watch from etcd, so a compaction makes an old resourceVersion 410 Gone."""

    etcd_compaction_interval: str = "5m"
    """kube-apiserver --etcd-compaction-interval; "0" disables the API server's own compactions."""

    min_request_timeout_s: int = 1800
    """kube-apiserver --min-request-timeout: watches end after a random time in [this, 2*this]."""

    runtime_config: str = ""
    """kube-apiserver --runtime-config, e.g. "discovery.k8s.io/v1=false" to test the Endpoints fallback.
    CoreDNS needs EndpointSlices, so such a cluster runs without it; /readyz then skips informer-sync."""

    coredns: bool = True
    """Run CoreDNS. It needs EndpointSlices, so it never runs when runtime_config turns them off."""

    coredns_cache_s: int = 0
    """Seconds for CoreDNS's cache plugin; 0 leaves it out so tests see every change at once."""

    coredns_ttl_s: int = 5
    """TTL CoreDNS's kubernetes plugin puts on answers (its default is 5)."""

    cluster_domain: str = "cluster.local"
    service_cluster_ip_range: str = "10.96.0.0/16"
    """Service ClusterIPs are only API data here: nothing routes or sends traffic to them."""

    controllers: tuple[str, ...] = DEFAULT_CONTROLLERS
    extra_apiserver_args: tuple[str, ...] = ()
    start_timeout_s: float = 90.0
    """Bound for each component to become ready; a warm start of everything takes well under 30 s."""

    stop_timeout_s: float = 5.0
    """Grace after SIGTERM before the process group is killed. The API server of this version stops
    serving at once on SIGTERM but then lingers for more than 15 s before exiting; waiting for that
    only slows every teardown."""

    @property
    def serves_endpointslices(self) -> bool:
        return "discovery.k8s.io/v1=false" not in self.runtime_config.replace(" ", "")

    @property
    def readyz_path(self) -> str:
        """Without EndpointSlices an API server informer never syncs; that one check is left out."""
        return "/readyz" if self.serves_endpointslices else "/readyz?exclude=informer-sync"


# --- process handling ---------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
# Looked up once here: the child between fork and exec must not dlopen (another thread of the parent
# may have held the loader's lock at fork time), only call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL us when the parent thread goes away."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def free_port(*, udp_too: bool = False) -> int:
    """A port free on 127.0.0.1 now (for TCP, and for UDP as well if asked). Racy by nature, but the
    kernel hands out ports in sequence, so a just-freed port is rarely handed out again at once."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOOPBACK, 0))
            port = int(tcp.getsockname()[1])
            if not udp_too:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOOPBACK, port))
                except OSError:
                    continue
                return port
    raise ControlPlaneError("no free loopback port found")


_KILL_WAIT_S = 10.0  # SIGKILL takes effect at once; this only bounds a wait on a wedged kernel


@dataclass
class Component:
    """One child process with its command line, log file and process group."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread,
        # which lives as long as the process; from other threads rely on stop() and atexit.
        in_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() kills everything it spawned
                preexec_fn=_die_with_parent if in_main_thread else None,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ControlPlaneError(
                f"{self.name} exited with {self.process.returncode}; last log lines:\n{self.log_tail()}"
            )

    def stop(self, timeout_s: float) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM if timeout_s > 0 else signal.SIGKILL)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=_KILL_WAIT_S)
        # Children the component may have left in its group go too.
        self._signal_group(signal.SIGKILL)
        self.process = None

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def wait_until(
    condition: Callable[[], bool], *, timeout_s: float, what: str, alive: Callable[[], None] | None = None
) -> None:
    """Poll `condition` every 100 ms until true; raise after `timeout_s` (or when `alive` raises)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if alive is not None:
            alive()
        if condition():
            return
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.1)


# --- certificates -------------------------------------------------------------------------------------

_CERT_LIFETIME = datetime.timedelta(days=365)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_ca(directory: Path) -> KeyPair:
    """A self-signed CA that signs every serving and client certificate of this control plane."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("seedsvc-test-ca"))
        .issuer_name(_name("seedsvc-test-ca"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def issue_cert(
    ca: KeyPair,
    directory: Path,
    *,
    stem: str,
    common_name: str,
    organization: str | None = None,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
) -> KeyPair:
    """A leaf certificate for server and client auth, signed by `ca`."""
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pair.key)
    return pair


def make_service_account_keys(directory: Path) -> KeyPair:
    """The RSA key the API server signs service-account tokens with, and its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pair = KeyPair(directory / "sa.pub", directory / "sa.key")
    pair.cert.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    _write_key(key, pair.key)
    return pair


def write_kubeconfig(path: Path, *, server: str, ca: Path, client: KeyPair, user: str) -> Path:
    """A kubeconfig with the certificates embedded. JSON is valid YAML, so no YAML writer is needed."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "seedsvc-test", "cluster": {"server": server, "certificate-authority-data": b64(ca)}}],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)}}
        ],
        "contexts": [{"name": user, "context": {"cluster": "seedsvc-test", "user": user}}],
        "current-context": user,
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


# --- the control plane ---------------------------------------------------------------------------------


_PORT_ATTEMPTS = 3
_PORT_TAKEN = "address already in use"


@dataclass
class _Pki:
    ca: KeyPair
    apiserver: KeyPair
    admin: KeyPair
    controller_manager: KeyPair
    coredns: KeyPair
    service_account: KeyPair


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

    _components: dict[str, Component] = field(init=False, default_factory=dict)
    _pki: _Pki = field(init=False)
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
        self._pki = self._make_pki()
        self.ca_file = self._pki.ca.cert
        self._admin_tls = ssl.create_default_context(cafile=str(self._pki.ca.cert))
        self._admin_tls.load_cert_chain(str(self._pki.admin.cert), str(self._pki.admin.key))
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
        return self

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

    def stop(self) -> None:
        """Stop every component, newest first. Safe to call more than once."""
        for name in reversed(list(self._components)):
            self._components.pop(name).stop(self.options.stop_timeout_s)
        atexit.unregister(self.stop)

    def check_alive(self) -> None:
        """Raise ControlPlaneError if any component has exited."""
        for component in list(self._components.values()):
            component.check_alive()

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _allocate_ports(self) -> None:
        self._ports = {
            "etcd-client": free_port(),
            "etcd-peer": free_port(),
            "apiserver": free_port(),
            "coredns": free_port(udp_too=True),
            "coredns-ready": free_port(),
        }
        self.server = f"https://{LOOPBACK}:{self._ports['apiserver']}"
        self.etcd_url = f"http://{LOOPBACK}:{self._ports['etcd-client']}"
        self.dns = (LOOPBACK, self._ports["coredns"])

    def _make_pki(self) -> _Pki:
        pki = self.directory / "pki"
        pki.mkdir(exist_ok=True)
        ca = make_ca(pki)
        service_ip = str(next(ipaddress.ip_network(self.options.service_cluster_ip_range).hosts()))
        domain = self.options.cluster_domain
        return _Pki(
            ca=ca,
            apiserver=issue_cert(
                ca,
                pki,
                stem="apiserver",
                common_name="kube-apiserver",
                dns_names=(
                    "localhost",
                    "kubernetes",
                    "kubernetes.default",
                    "kubernetes.default.svc",
                    f"kubernetes.default.svc.{domain}",
                ),
                ip_addresses=(LOOPBACK, service_ip),
            ),
            admin=issue_cert(ca, pki, stem="admin", common_name="seedsvc-admin", organization="system:masters"),
            # The built-in RBAC roles bind this user name; each controller then runs under its own
            # service account (--use-service-account-credentials), as kubeadm sets it up.
            controller_manager=issue_cert(
                ca, pki, stem="kube-controller-manager", common_name="system:kube-controller-manager"
            ),
            # CoreDNS only reads; system:masters spares us a ClusterRole nobody tests here.
            coredns=issue_cert(ca, pki, stem="coredns", common_name="seedsvc:coredns", organization="system:masters"),
            service_account=make_service_account_keys(pki),
        )

    def _component(self, name: str, argv: list[str]) -> Component:
        component = Component(name, argv, self.directory / "logs" / f"{name}.log")
        self._components[name] = component
        component.start()
        return component

    # -- etcd --

    def _start_etcd(self) -> None:
        assert self.bin_dir is not None
        # Every start is a fresh cluster: old etcd data would hold objects signed by a previous CA.
        shutil.rmtree(self.directory / "etcd", ignore_errors=True)
        client, peer = self.etcd_url, f"http://{LOOPBACK}:{self._ports['etcd-peer']}"
        etcd = self._component(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=seedsvc-test",
                f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=seedsvc-test={peer}",
                "--initial-cluster-state=new",
                # A throw-away test store: fsync only costs time here.
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        wait_until(
            self._etcd_healthy, timeout_s=self.options.start_timeout_s, what="etcd /health", alive=etcd.check_alive
        )

    def _etcd_healthy(self) -> bool:
        try:
            return bool(_http_json("GET", f"{self.etcd_url}/health").get("health") == "true")
        except (OSError, ValueError):
            return False

    def etcd_revision(self) -> int:
        """Current etcd revision, from the v3 JSON gateway."""
        status = _http_json("POST", f"{self.etcd_url}/v3/maintenance/status", body={})
        return int(status["header"]["revision"])

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision now; returns that revision.

        With the watch cache off, a watch or list from any older resourceVersion then gets 410 Gone.
        """
        revision = self.etcd_revision()
        try:
            _http_json("POST", f"{self.etcd_url}/v3/kv/compaction", body={"revision": str(revision), "physical": True})
        except ControlPlaneError as exc:
            # Nothing was written since the last compaction: already compacted to this revision.
            if "required revision has been compacted" not in str(exc):
                raise
        return revision

    # -- kube-apiserver --

    def _apiserver_argv(self) -> list[str]:
        assert self.bin_dir is not None
        pki, opts = self._pki, self.options
        argv = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={self._ports['apiserver']}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-issuer=https://kubernetes.default.svc.{opts.cluster_domain}",
            f"--service-account-key-file={pki.service_account.cert}",
            f"--service-account-signing-key-file={pki.service_account.key}",
            f"--service-cluster-ip-range={opts.service_cluster_ip_range}",
            f"--watch-cache={'true' if opts.watch_cache else 'false'}",
            f"--etcd-compaction-interval={opts.etcd_compaction_interval}",
            f"--min-request-timeout={opts.min_request_timeout_s}",
            f"--cert-dir={self.directory / 'apiserver-certs'}",
            "--profiling=false",
            "--v=1",
        ]
        if opts.runtime_config:
            argv.append(f"--runtime-config={opts.runtime_config}")
        return argv + list(opts.extra_apiserver_args)

    def start_apiserver(self) -> None:
        """Start (or restart after stop_apiserver()) the API server on the same port with the same PKI."""
        apiserver = self._component("kube-apiserver", self._apiserver_argv())
        wait_until(
            self._apiserver_ready,
            timeout_s=self.options.start_timeout_s,
            what="kube-apiserver /readyz",
            alive=apiserver.check_alive,
        )

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
        return _http_json(method, self.server + path, body=body, context=self._admin_tls, raw=raw)

    # -- kube-controller-manager --

    def _start_controller_manager(self) -> None:
        assert self.bin_dir is not None
        kubeconfig = write_kubeconfig(
            self.directory / "kube-controller-manager.kubeconfig",
            server=self.server,
            ca=self.ca_file,
            client=self._pki.controller_manager,
            user="system:kube-controller-manager",
        )
        manager = self._component(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--controllers={','.join(self.options.controllers)}",
                "--use-service-account-credentials=true",
                f"--root-ca-file={self._pki.ca.cert}",
                f"--service-account-private-key-file={self._pki.service_account.key}",
                "--leader-elect=false",  # one instance; electing only delays the start
                "--secure-port=0",  # nothing scrapes it; one port less to allocate
                "--cluster-name=seedsvc-test",
                "--v=1",
            ],
        )
        # The default namespace's "default" ServiceAccount appears once the controllers run.
        wait_until(
            lambda: self.exists("/api/v1/namespaces/default/serviceaccounts/default"),
            timeout_s=self.options.start_timeout_s,
            what="kube-controller-manager (default ServiceAccount)",
            alive=manager.check_alive,
        )

    def exists(self, path: str) -> bool:
        """True if GET `path` succeeds as admin."""
        try:
            self.api("GET", path)
        except (ControlPlaneError, OSError):
            return False
        return True

    # -- CoreDNS --

    def corefile(self, kubeconfig: Path) -> str:
        """Corefile serving the cluster domain from the API, on 127.0.0.1 only."""
        opts = self.options
        cache = f"    cache {opts.coredns_cache_s}\n" if opts.coredns_cache_s > 0 else ""
        return (
            f".:{self._ports['coredns']} {{\n"
            f"    bind {LOOPBACK}\n"
            "    errors\n"
            f"    ready {LOOPBACK}:{self._ports['coredns-ready']}\n"
            f"{cache}"
            f"    kubernetes {opts.cluster_domain} in-addr.arpa ip6.arpa {{\n"
            f"        kubeconfig {kubeconfig} seedsvc:coredns\n"
            # verified: pod A records (1-2-3-4.ns.pod...) only for pods that exist.
            "        pods verified\n"
            f"        ttl {opts.coredns_ttl_s}\n"
            "        fallthrough in-addr.arpa ip6.arpa\n"
            "    }\n"
            "}\n"
        )

    def _start_coredns(self) -> None:
        assert self.bin_dir is not None
        kubeconfig = write_kubeconfig(
            self.directory / "coredns.kubeconfig",
            server=self.server,
            ca=self.ca_file,
            client=self._pki.coredns,
            user="seedsvc:coredns",
        )
        corefile = self.directory / "Corefile"
        corefile.write_text(self.corefile(kubeconfig))
        coredns = self._component("coredns", [str(self.bin_dir / "coredns"), "-conf", str(corefile)])
        ready_url = f"http://{LOOPBACK}:{self._ports['coredns-ready']}/ready"
        wait_until(
            lambda: _http_ok(ready_url),
            timeout_s=self.options.start_timeout_s,
            what="CoreDNS /ready",
            alive=coredns.check_alive,
        )

    # -- service-account tokens --

    def mint_token(
        self,
        namespace: str,
        service_account: str,
        *,
        expiration_seconds: int = 3600,
        bound_secret: str | None = None,
    ) -> str:
        """A token from the TokenRequest API, as the kubelet gets for a projected volume.

        Binding it to a Secret lets a test revoke it: once the Secret is deleted the API server rejects
        the token (401). The API server requires expiration_seconds >= 600.
        """
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if bound_secret is not None:
            secret = self.api("GET", f"/api/v1/namespaces/{namespace}/secrets/{bound_secret}")
            spec["boundObjectRef"] = {
                "kind": "Secret",
                "apiVersion": "v1",
                "name": bound_secret,
                "uid": secret["metadata"]["uid"],
            }
        answer = self.api(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return str(answer["status"]["token"])

    def write_incluster_files(self, namespace: str, service_account: str, directory: Path) -> Path:
        """Write `token`, `ca.crt` and `namespace` as a pod sees them under
        /var/run/secrets/kubernetes.io/serviceaccount; returns `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(self.mint_token(namespace, service_account))
        (directory / "ca.crt").write_bytes(self.ca_file.read_bytes())
        (directory / "namespace").write_text(namespace)
        return directory

    def incluster_env(self) -> dict[str, str]:
        """KUBERNETES_SERVICE_HOST/PORT as a pod would have them, pointing at this API server."""
        return {"KUBERNETES_SERVICE_HOST": LOOPBACK, "KUBERNETES_SERVICE_PORT": str(self._ports["apiserver"])}

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each running component (for the docs and benchmarks)."""
        sizes: dict[str, int] = {}
        for name, component in self._components.items():
            if component.process is not None:
                status = Path(f"/proc/{component.process.pid}/status").read_text()
                rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
                sizes[name] = rss_kib * 1024
        return sizes


# --- tiny HTTP helpers (stdlib only: these run before any client library is configured) -------------------

_HTTP_TIMEOUT_S = 10.0


def _http_json(
    method: str, url: str, *, body: Any = None, context: ssl.SSLContext | None = None, raw: bool = False
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S, context=context) as response:
            payload = response.read().decode()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        raise ControlPlaneError(f"{method} {url} -> {exc.code}: {detail}") from exc
    return payload if raw else json.loads(payload)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as response:
            return int(response.status) == 200
    except OSError:
        return False


def kube_json(
    api_client: ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: dict[str, str] | None = None,
    content_type: str = "application/json",
    timeout_s: float = _HTTP_TIMEOUT_S,
) -> Any:
    """One request through a `kubernetes` ApiClient, returning raw JSON (dicts, not models).

    Tests and the kubelet stand-in talk JSON so that what they send and check is exactly what the API
    server sees; non-2xx answers raise kubernetes.client.ApiException as the typed methods do.
    """
    method, url, headers, serialized, _ = api_client.param_serialize(
        method=method,
        resource_path=path,
        query_params=list((query or {}).items()),
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, header_params=headers, body=serialized, _request_timeout=timeout_s)
    response.read()  # type: ignore[no-untyped-call]  # untyped upstream
    return api_client.response_deserialize(response, {"2XX": "object"}).data


# --- command line -------------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m seedsvc_devcluster.controlplane")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the control plane and run until SIGINT/SIGTERM")
    up.add_argument("--dir", type=Path, required=True, help="state directory (PKI, kubeconfig, etcd data, logs)")
    up.add_argument("--no-watch-cache", action="store_true")
    up.add_argument("--etcd-compaction-interval", default=ControlPlaneOptions.etcd_compaction_interval)
    up.add_argument("--min-request-timeout", type=int, default=ControlPlaneOptions.min_request_timeout_s)
    up.add_argument("--runtime-config", default="")
    up.add_argument("--coredns-cache", type=int, default=0, help="CoreDNS cache seconds (0: off)")
    up.add_argument("--kubelet", action="store_true", help="also run the kubelet stand-in (3 fake nodes)")
    up.add_argument("--probe", action="store_true", help="kubelet stand-in probes readinessProbes")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    options = ControlPlaneOptions(
        watch_cache=not args.no_watch_cache,
        etcd_compaction_interval=args.etcd_compaction_interval,
        min_request_timeout_s=args.min_request_timeout,
        runtime_config=args.runtime_config,
        coredns_cache_s=args.coredns_cache,
    )
    with _stop_on_signals() as stop, ControlPlane(args.dir.resolve(), options) as plane:
        kubelet = None
        if args.kubelet:
            from seedsvc_devcluster.kubelet import Kubelet, KubeletOptions

            kubelet = Kubelet.from_kubeconfig(plane.kubeconfig, KubeletOptions(probe=args.probe)).start()
        print(f"kubeconfig: {plane.kubeconfig}", flush=True)
        print(f"server:     {plane.server}", flush=True)
        print(f"dns:        {plane.dns[0]}:{plane.dns[1]} ({plane.cluster_domain})", flush=True)
        print(f"started in {plane.startup_seconds:.1f}s; Ctrl-C to stop", flush=True)
        while not stop.wait(1.0):
            plane.check_alive()
        if kubelet is not None:
            kubelet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
