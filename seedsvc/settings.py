"""Configuration: one table of options, each with a flag, an environment variable and a default.

The sidecar's CLI, the Python API and the docs are all driven by :data:`OPTIONS`, so a setting cannot
exist in one place and not the others. A flag wins over its environment variable; an invalid value
raises :class:`ConfigError` naming the flag or variable and the value (the CLI exits 2 with it).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from seedsvc import federation_settings
from seedsvc.records import InvalidAddress, normalize_address
from seedsvc.selection import Policy

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RESOLV_CONF = "/etc/resolv.conf"

# A Service name is an RFC 1035 label; a namespace an RFC 1123 label:
# https://kubernetes.io/docs/concepts/overview/working-with-objects/names/
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
_POD_NAME = re.compile(r"^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$")


class ConfigError(ValueError):
    """An invalid setting; the message names the flag or variable and the value."""


SourceKind = Literal["kubernetes", "dns", "static"]
ApiKind = Literal["auto", "endpointslices", "endpoints"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the sidecar and the Python API, validated. Durations are seconds."""

    source: SourceKind = "kubernetes"
    service: str = "cassandra"
    namespace: str = "default"
    count: int = 3
    seeds: tuple[str, ...] = ()
    pod_ip: str | None = None
    pod_name: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    kubeconfig: Path | None = None
    kubernetes_host: str | None = None
    kubernetes_port: int | None = None
    serviceaccount_dir: Path = Path(SERVICEACCOUNT_DIR)
    api: ApiKind = "auto"
    dns_name: str | None = None
    dns_nameserver: tuple[str, int] | None = None
    srv_port_name: str | None = None
    cluster_domain: str = "cluster.local"
    state_file: Path | None = None
    log_format: LogFormat = "text"
    log_level: str = "info"
    flap_grace: float = 30.0
    restart_fallback_after: float = 120.0
    bootstrap_ordinal: int = 0
    connect_timeout: float = 5.0
    request_timeout: float = 10.0
    watch_timeout: float = 290.0
    backoff_max: float = 30.0
    token_reread: float = 60.0
    dns_min_refresh: float = 1.0
    dns_max_refresh: float = 30.0
    dns_timeout: float = 2.0
    datacenter: str | None = None
    peers: tuple[tuple[str, str], ...] = ()
    peer_count: int = 2
    peer_ca_file: Path | None = None
    bootstrap_datacenter: str | None = None
    peer_expiry: float = 86400.0

    @property
    def policy(self) -> Policy:
        return Policy(
            count=self.count,
            flap_grace=self.flap_grace,
            restart_fallback_after=self.restart_fallback_after,
            bootstrap_ordinal=self.bootstrap_ordinal,
            static_seeds=self.seeds,
        )

    @property
    def resolved_dns_name(self) -> str:
        return self.dns_name or f"{self.service}.{self.namespace}.svc.{self.cluster_domain}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: ``field`` of :class:`Settings`, its flag, its variable, how to parse it."""

    field: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    help: str
    metavar: str = "VALUE"


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"not a valid {what}")
        return value

    return parse


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value.strip())
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return parse


def _seconds(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value.strip())
        if not low <= number <= high:  # also rejects nan
            raise ValueError(f"must be between {low:g} and {high:g} seconds")
        return number

    return parse


def _address(value: str) -> str:
    try:
        return normalize_address(value)
    except InvalidAddress:
        raise ValueError("not an IP address") from None


def _address_list(value: str) -> tuple[str, ...]:
    items = [item.strip() for item in value.split(",") if item.strip()]
    try:
        # Order kept, duplicates dropped: CASSANDRA_SEEDS is written by people.
        return tuple(dict.fromkeys(normalize_address(item) for item in items))
    except InvalidAddress as exc:
        raise ValueError(str(exc)) from None


def _path(value: str) -> Path:
    if not value.strip():
        raise ValueError("empty path")
    return Path(value)


def _host(value: str) -> str:
    value = value.strip()
    try:
        return normalize_address(value)
    except InvalidAddress:
        return _matching(_DOMAIN, "host name or IP address")(value.lower())


def host_port(value: str, default_port: int = 53) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address."""
    text = value.strip()
    port = default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError("expected [address]:port")
            port = _int_range(1, 65535)(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _int_range(1, 65535)(port_text)
    else:
        host = text
    return _host(host), port


def _level(value: str) -> str:
    return _choice("debug", "info", "warning", "error")(value.lower())


OPTIONS: tuple[Option, ...] = (
    Option("source", "--source", "SEEDSVC_SOURCE", _choice("kubernetes", "dns", "static"),
           "where candidates come from: kubernetes, dns or static", "SOURCE"),
    Option("service", "--service", "CASSANDRA_SERVICE", _matching(_DNS1035, "Service name"),
           "the headless Service of the Cassandra pods", "NAME"),
    Option("namespace", "--namespace", "POD_NAMESPACE", _matching(_DNS1123, "namespace"),
           "namespace of the Service (default: the service-account namespace, else default)", "NAME"),
    Option("count", "--count", "CASSANDRA_SERVICE_NUM_SEEDS", _int_range(1, 100),
           "how many seeds to pick", "N"),
    Option("seeds", "--seeds", "CASSANDRA_SEEDS", _address_list,
           "static seed addresses, comma-separated: the fallback before discovery succeeds", "IPS"),
    Option("pod_ip", "--pod-ip", "POD_IP", _address, "this pod's IP, left out of its own list", "IP"),
    Option("pod_name", "--pod-name", "POD_NAME", _matching(_POD_NAME, "pod name"),
           "this pod's name, left out of its own list; ordinal 0 may seed itself", "NAME"),
    Option("host", "--host", "SEEDSVC_HOST", _host, "listen address of serve", "ADDRESS"),
    Option("port", "--port", "SEEDSVC_PORT", _int_range(0, 65535), "listen port of serve (0: any)", "PORT"),
    Option("kubeconfig", "--kubeconfig", "KUBECONFIG", _path, "kubeconfig to use outside a pod", "PATH"),
    Option("kubernetes_host", "--kubernetes-host", "KUBERNETES_SERVICE_HOST", _host,
           "API server address inside a pod (set by Kubernetes)", "HOST"),
    Option("kubernetes_port", "--kubernetes-port", "KUBERNETES_SERVICE_PORT", _int_range(1, 65535),
           "API server port inside a pod (set by Kubernetes)", "PORT"),
    Option("serviceaccount_dir", "--serviceaccount-dir", "SEEDSVC_SERVICEACCOUNT_DIR", _path,
           "where the pod's token, ca.crt and namespace files are", "PATH"),
    Option("api", "--api", "SEEDSVC_API", _choice("auto", "endpointslices", "endpoints"),
           "auto (EndpointSlices, falling back to Endpoints), endpointslices or endpoints", "API"),
    Option("dns_name", "--dns-name", "SEEDSVC_DNS_NAME", _matching(_DOMAIN, "DNS name"),
           "name to resolve (default <service>.<namespace>.svc.<cluster-domain>)", "NAME"),
    Option("dns_nameserver", "--dns-nameserver", "SEEDSVC_DNS_NAMESERVER", host_port,
           "host or host:port of the DNS server (default: /etc/resolv.conf)", "HOST[:PORT]"),
    Option("srv_port_name", "--srv-port-name", "SEEDSVC_SRV_PORT_NAME", _matching(_PORT_NAME, "port name"),
           "query SRV _<name>._tcp.<dns-name> instead of A/AAAA", "NAME"),
    Option("cluster_domain", "--cluster-domain", "SEEDSVC_CLUSTER_DOMAIN", _matching(_DOMAIN, "domain"),
           "cluster DNS domain (default: from the resolv.conf search list, else cluster.local)", "DOMAIN"),
    Option("state_file", "--state-file", "SEEDSVC_STATE_FILE", _path,
           "file that keeps the last known list across restarts (default: none)", "PATH"),
    Option("log_format", "--log-format", "SEEDSVC_LOG_FORMAT", _choice("text", "json"), "text or json", "FORMAT"),
    Option("log_level", "--log-level", "SEEDSVC_LOG_LEVEL", _level, "debug, info, warning or error", "LEVEL"),
    Option("flap_grace", "--flap-grace", "SEEDSVC_FLAP_GRACE", _seconds(0, 86400),
           "seconds an unready seed keeps its place", "SECONDS"),
    Option("restart_fallback_after", "--restart-fallback-after", "SEEDSVC_RESTART_FALLBACK_AFTER",
           _seconds(0, 86400), "seconds without an eligible peer before unready peers become candidates",
           "SECONDS"),
    Option("bootstrap_ordinal", "--bootstrap-ordinal", "SEEDSVC_BOOTSTRAP_ORDINAL", _int_range(0, 1_000_000),
           "the ordinal that may seed itself when it has no peer", "N"),
    Option("connect_timeout", "--connect-timeout", "SEEDSVC_CONNECT_TIMEOUT", _seconds(0.05, 300),
           "seconds to connect to the API server", "SECONDS"),
    Option("request_timeout", "--request-timeout", "SEEDSVC_REQUEST_TIMEOUT", _seconds(0.1, 600),
           "seconds for one list request, and for silence on a watch beyond its server-side timeout",
           "SECONDS"),
    Option("watch_timeout", "--watch-timeout", "SEEDSVC_WATCH_TIMEOUT", _seconds(1, 3600),
           "server-side timeout of one watch request (jittered)", "SECONDS"),
    Option("backoff_max", "--backoff-max", "SEEDSVC_BACKOFF_MAX", _seconds(0.1, 3600),
           "longest pause between retries", "SECONDS"),
    Option("token_reread", "--token-reread", "SEEDSVC_TOKEN_REREAD", _seconds(1, 3600),
           "seconds between re-reads of the service-account token file", "SECONDS"),
    Option("dns_min_refresh", "--dns-min-refresh", "SEEDSVC_DNS_MIN_REFRESH", _seconds(0.1, 3600),
           "shortest interval between DNS queries, whatever the TTL", "SECONDS"),
    Option("dns_max_refresh", "--dns-max-refresh", "SEEDSVC_DNS_MAX_REFRESH", _seconds(0.1, 86400),
           "longest interval between DNS queries, whatever the TTL", "SECONDS"),
    Option("dns_timeout", "--dns-timeout", "SEEDSVC_DNS_TIMEOUT", _seconds(0.05, 60),
           "seconds to wait for one DNS answer", "SECONDS"),
    Option("datacenter", "--datacenter", "SEEDSVC_DATACENTER", federation_settings.datacenter_name,
           "this Cassandra datacenter's name (falls back to CASSANDRA_DC); unset: a single datacenter", "NAME"),
    Option("peers", "--peers", "SEEDSVC_PEERS", federation_settings.peers,
           "peer datacenters' seedsvc base URLs: name=URL[,name=URL...]; needs --datacenter", "NAME=URL,..."),
    Option("peer_count", "--peer-count", "SEEDSVC_PEER_COUNT", _int_range(1, 100),
           "seeds taken from each peer datacenter, in the peer's order", "N"),
    Option("peer_ca_file", "--peer-ca-file", "SEEDSVC_PEER_CA_FILE", _path,
           "CA bundle that verifies https:// peers (default: the system CAs)", "PATH"),
    Option("bootstrap_datacenter", "--bootstrap-datacenter", "SEEDSVC_BOOTSTRAP_DATACENTER",
           federation_settings.datacenter_name,
           "with peers: the one datacenter whose bootstrap pod may seed itself when no peer seed is known "
           "(default: none may)", "NAME"),
    Option("peer_expiry", "--peer-expiry", "SEEDSVC_PEER_EXPIRY", _seconds(1, 365 * 86400),
           "seconds a failing peer's last seeds stay in the list", "SECONDS"),
)

# The classic run.sh's name for the datacenter, read when SEEDSVC_DATACENTER and --datacenter are unset.
DATACENTER_FALLBACK_ENV = "CASSANDRA_DC"


def load(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    serviceaccount_namespace: Callable[[Path], str | None] | None = None,
    resolv_conf: Path = Path(RESOLV_CONF),
) -> Settings:
    """Build :class:`Settings` from flag values (keyed by field name) and an environment.

    Empty environment variables count as unset, as Kubernetes renders an absent downward-API field.
    """
    flags = flags or {}
    environ = environ if environ is not None else {}
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw, origin = flags.get(option.field), option.flag
        if raw is None:
            raw, origin = environ.get(option.env) or None, option.env
        if raw is None:
            continue
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid {origin}={raw!r}: {exc}") from None

    if "datacenter" not in values and environ.get(DATACENTER_FALLBACK_ENV):
        raw = environ[DATACENTER_FALLBACK_ENV]
        try:
            values["datacenter"] = federation_settings.datacenter_name(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid {DATACENTER_FALLBACK_ENV}={raw!r}: {exc}") from None

    sa_dir = values.get("serviceaccount_dir", Path(SERVICEACCOUNT_DIR))
    if "namespace" not in values:
        values["namespace"] = (serviceaccount_namespace or _read_namespace)(sa_dir) or "default"
    if "cluster_domain" not in values:
        values["cluster_domain"] = cluster_domain_from_resolv_conf(resolv_conf) or "cluster.local"
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.source == "static" and not settings.seeds:
        raise ConfigError("invalid SEEDSVC_SOURCE='static': needs CASSANDRA_SEEDS (--seeds)")
    if settings.dns_min_refresh > settings.dns_max_refresh:
        raise ConfigError(
            f"invalid SEEDSVC_DNS_MIN_REFRESH={settings.dns_min_refresh:g}: "
            f"greater than SEEDSVC_DNS_MAX_REFRESH={settings.dns_max_refresh:g}"
        )
    _check_federation(settings)


def _check_federation(settings: Settings) -> None:
    """DESIGN.md section 7: peers need a datacenter, never name it, and the bootstrap DC is one of them."""
    shown_peers = ",".join(f"{name}={url}" for name, url in settings.peers)
    if settings.peers and settings.datacenter is None:
        raise ConfigError(f"invalid SEEDSVC_PEERS={shown_peers!r}: needs SEEDSVC_DATACENTER (--datacenter)")
    if any(name == settings.datacenter for name, _ in settings.peers):
        raise ConfigError(f"invalid SEEDSVC_PEERS={shown_peers!r}: a peer is named like this datacenter "
                          f"({settings.datacenter})")
    bootstrap = settings.bootstrap_datacenter
    if bootstrap is not None:
        known = {settings.datacenter, *(name for name, _ in settings.peers)} - {None}
        if bootstrap not in known:
            raise ConfigError(f"invalid SEEDSVC_BOOTSTRAP_DATACENTER={bootstrap!r}: neither this datacenter "
                              f"nor a peer ({', '.join(sorted(str(k) for k in known)) or 'none configured'})")
    if settings.peer_ca_file is not None and not settings.peer_ca_file.is_file():
        raise ConfigError(f"invalid SEEDSVC_PEER_CA_FILE={str(settings.peer_ca_file)!r}: no such file")


def _read_namespace(serviceaccount_dir: Path) -> str | None:
    try:
        text = (serviceaccount_dir / "namespace").read_text().strip()
    except OSError:
        return None
    return text if _DNS1123.match(text) else None


def cluster_domain_from_resolv_conf(path: Path) -> str | None:
    """The cluster domain from a pod's search list (``<ns>.svc.<domain> svc.<domain> <domain>``)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if fields and fields[0] == "search":
            for domain in fields[1:]:
                if domain.startswith("svc.") and len(domain) > 4:
                    return domain[4:].rstrip(".")
    return None


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
