"""Configuration: a tree of small settings groups, one per concern, each field a flag and a variable.

Every field is declared once, with :func:`seedsvc.options.setting` (flag, environment variable,
parser, help; the field's default is the setting's default). :data:`OPTIONS` is read from that tree
and drives the loader, the CLI, the Python API and the docs table, so a setting cannot exist in one
place and not the others. Callers take the group they need (``settings.kubernetes``,
``settings.selection``, ...). A flag wins over its environment variable; an invalid value raises
:class:`ConfigError` naming the flag or variable and the value (the CLI exits 2 with it).

Adding a group: write a frozen dataclass whose fields use ``setting()``, add it as a field of
:class:`Settings`, and put a row per flag in the README's configuration table.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seedsvc import federation_settings, values
from seedsvc.federation_settings import FederationSettings
from seedsvc.options import Option, markdown_tables, options_of, setting
from seedsvc.records import Identity
from seedsvc.selection import Policy
from seedsvc.sources import relay_settings
from seedsvc.sources.relay_settings import RelaySettings

SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
RESOLV_CONF = "/etc/resolv.conf"


class ConfigError(ValueError):
    """An invalid setting; the message names the flag or variable and the value."""


SourceKind = Literal["kubernetes", "dns", "static", "relay"]
ApiKind = Literal["auto", "endpointslices", "endpoints"]
LogFormat = Literal["text", "json"]


@dataclass(frozen=True, slots=True)
class DiscoverySettings:
    """Which source finds the candidates, and which Service they belong to."""

    source: SourceKind = setting(
        "kubernetes", flag="--source", env="SEEDSVC_SOURCE", parse=values.one_of(SourceKind),
        metavar="SOURCE", help="where candidates come from: kubernetes, dns, static or relay")
    service: str = setting(
        "cassandra", flag="--service", env="CASSANDRA_SERVICE",
        parse=values.matching(values.DNS1035_LABEL, "Service name"), metavar="NAME",
        help="the headless Service of the Cassandra pods")
    namespace: str = setting(
        "default", flag="--namespace", env="POD_NAMESPACE", parse=values.matching(values.DNS1123_LABEL, "namespace"),
        metavar="NAME", help="namespace of the Service (default: the service-account namespace, else default)")
    backoff_max: float = setting(
        30.0, flag="--backoff-max", env="SEEDSVC_BACKOFF_MAX", parse=values.seconds(0.1, 3600), metavar="SECONDS",
        help="longest pause between retries")
    """Caps the jittered retry backoff of every source: a failed API server or DNS server is asked
    again at least this often, without a fleet of sidecars hammering it in step."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Where seedsvc serve listens."""

    host: str = setting("0.0.0.0", flag="--host", env="SEEDSVC_HOST", parse=values.host, metavar="ADDRESS",
                        help="listen address of serve")
    port: int = setting(8080, flag="--port", env="SEEDSVC_PORT", parse=values.int_range(0, 65535), metavar="PORT",
                        help="listen port of serve (0: any)")
    """The shim's default URL is http://127.0.0.1:8080/seeds; 8080 is free in the Cassandra image (7000,
    7001, 7199 and 9042 are Cassandra's)."""
    header_timeout: float = setting(
        10.0, flag="--http-header-timeout", env="SEEDSVC_HTTP_HEADER_TIMEOUT", parse=values.seconds(0.5, 300),
        metavar="SECONDS", help="seconds a client has to finish a request's headers, from connecting or from the "
        "first byte of a later request")
    """Slowloris: without it a connection that drips its headers holds a descriptor for ever. Ten seconds
    is far beyond what the shim, a probe or a scraper needs on a loaded node (docs/http-api.md, Limits)."""
    idle_timeout: float = setting(
        60.0, flag="--http-idle-timeout", env="SEEDSVC_HTTP_IDLE_TIMEOUT", parse=values.seconds(1, 3600),
        metavar="SECONDS", help="seconds a kept-alive connection may sit between requests")
    """Longer than Prometheus' usual 15-30 s scrape interval, so scrapers keep their connection."""
    max_connections: int = setting(
        512, flag="--http-max-connections", env="SEEDSVC_HTTP_MAX_CONNECTIONS", parse=values.int_range(1, 1_000_000),
        metavar="N", help="open connections from untrusted callers; more are answered 503 and closed (also kept "
        "below the file-descriptor limit)")
    """A pod's sidecar has a handful of legitimate remote callers (scrapers, peer datacenters, a debugging
    curl); 512 leaves room for all of them and keeps descriptors for the pod's own callers."""
    max_long_polls: int = setting(
        256, flag="--http-max-long-polls", env="SEEDSVC_HTTP_MAX_LONG_POLLS", parse=values.int_range(0, 1_000_000),
        metavar="N", help="waiting long-polls from untrusted callers; more are answered 503 with Retry-After")
    """Remote long-polls come from peer datacenters (a few seedsvc each); 256 bounds the memory a flood of
    waiting requests can hold."""
    trusted_networks: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"), flag="--http-trusted-networks", env="SEEDSVC_HTTP_TRUSTED_NETWORKS",
        parse=values.networks, metavar="CIDRS",
        help="callers never refused by the connection and long-poll caps, comma-separated CIDRs")
    """Loopback: the pod's own Cassandra shim and exec probes must always be served, whatever else
    connects. Add the node network if kubelet HTTP probes must never be refused."""


@dataclass(frozen=True, slots=True)
class KubernetesSettings:
    """How the Kubernetes source reaches and watches the API server."""

    kubeconfig: Path | None = setting(None, flag="--kubeconfig", env="KUBECONFIG", parse=values.path, metavar="PATH",
                                      help="kubeconfig to use outside a pod")
    host: str | None = setting(None, flag="--kubernetes-host", env="KUBERNETES_SERVICE_HOST", parse=values.host,
                               metavar="HOST", help="API server address inside a pod (set by Kubernetes)")
    port: int | None = setting(None, flag="--kubernetes-port", env="KUBERNETES_SERVICE_PORT",
                               parse=values.int_range(1, 65535), metavar="PORT",
                               help="API server port inside a pod (set by Kubernetes)")
    serviceaccount_dir: Path = setting(
        Path(SERVICEACCOUNT_DIR), flag="--serviceaccount-dir", env="SEEDSVC_SERVICEACCOUNT_DIR", parse=values.path,
        metavar="PATH", help="where the pod's token, ca.crt and namespace files are")
    api: ApiKind = setting(
        "auto", flag="--api", env="SEEDSVC_API", parse=values.one_of(ApiKind),
        metavar="API", help="auto (EndpointSlices, falling back to Endpoints), endpointslices or endpoints")
    connect_timeout: float = setting(
        5.0, flag="--connect-timeout", env="SEEDSVC_CONNECT_TIMEOUT", parse=values.seconds(0.05, 300),
        metavar="SECONDS", help="seconds to connect to the API server")
    """The API server is one hop away inside the cluster: a connect that takes seconds will not
    succeed, and the next attempt (with backoff) is the better use of the time."""
    request_timeout: float = setting(
        10.0, flag="--request-timeout", env="SEEDSVC_REQUEST_TIMEOUT", parse=values.seconds(0.1, 600),
        metavar="SECONDS",
        help="seconds for one list request, and for silence on a watch beyond its server-side timeout")
    """Lists of one Service's slices are small; and a watch that stays silent this long past the
    timeout it asked for is a dead connection, not a quiet one."""
    watch_timeout: float = setting(
        290.0, flag="--watch-timeout", env="SEEDSVC_WATCH_TIMEOUT", parse=values.seconds(1, 3600), metavar="SECONDS",
        help="server-side timeout of one watch request (jittered)")
    """Under the 300-350 s idle timeouts of common load balancers and proxies, so a quiet watch ends
    on the client's terms and resumes from its resourceVersion instead of being cut silently."""
    token_reread: float = setting(
        60.0, flag="--token-reread", env="SEEDSVC_TOKEN_REREAD", parse=values.seconds(1, 3600), metavar="SECONDS",
        help="seconds between re-reads of the service-account token file")
    """The kubelet refreshes a projected token at 80% of its lifetime (at least 10 minutes): a
    minute's delay is always in time, and a 401 makes the source re-read at once anyway."""


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """What the DNS source asks, whom, and how often."""

    name: str | None = setting(
        None, flag="--dns-name", env="SEEDSVC_DNS_NAME", parse=values.matching(values.DOMAIN, "DNS name"),
        metavar="NAME", help="name to resolve (default <service>.<namespace>.svc.<cluster-domain>)")
    nameserver: tuple[str, int] | None = setting(
        None, flag="--dns-nameserver", env="SEEDSVC_DNS_NAMESERVER", parse=values.host_port, metavar="HOST[:PORT]",
        help="host or host:port of the DNS server (default: /etc/resolv.conf)")
    srv_port_name: str | None = setting(
        None, flag="--srv-port-name", env="SEEDSVC_SRV_PORT_NAME", parse=values.matching(values.PORT_NAME, "port name"),
        metavar="NAME", help="query SRV _<name>._tcp.<dns-name> instead of A/AAAA")
    cluster_domain: str = setting(
        "cluster.local", flag="--cluster-domain", env="SEEDSVC_CLUSTER_DOMAIN",
        parse=values.matching(values.DOMAIN, "domain"), metavar="DOMAIN",
        help="cluster DNS domain (default: from the resolv.conf search list, else cluster.local)")
    min_refresh: float = setting(
        1.0, flag="--dns-min-refresh", env="SEEDSVC_DNS_MIN_REFRESH", parse=values.seconds(0.1, 3600),
        metavar="SECONDS", help="shortest interval between DNS queries, whatever the TTL")
    """CoreDNS answers headless Services with a 5 s TTL; one query a second per sidecar is the most a
    cluster DNS should see from us even when a TTL of 0 is configured."""
    max_refresh: float = setting(
        30.0, flag="--dns-max-refresh", env="SEEDSVC_DNS_MAX_REFRESH", parse=values.seconds(0.1, 86400),
        metavar="SECONDS", help="longest interval between DNS queries, whatever the TTL")
    """Caps how long a change can go unseen when the cluster DNS is configured with long TTLs, which
    this sidecar does not control."""
    timeout: float = setting(
        2.0, flag="--dns-timeout", env="SEEDSVC_DNS_TIMEOUT", parse=values.seconds(0.05, 60), metavar="SECONDS",
        help="seconds to wait for one DNS answer")
    """The cluster DNS answers in milliseconds; a lost UDP datagram is better asked again than waited for."""


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """How log lines are written."""

    format: LogFormat = setting("text", flag="--log-format", env="SEEDSVC_LOG_FORMAT",
                                parse=values.one_of(LogFormat), metavar="FORMAT", help="text or json")
    level: str = setting("info", flag="--log-level", env="SEEDSVC_LOG_LEVEL", parse=values.log_level,
                         metavar="LEVEL", help="debug, info, warning or error")


@dataclass(frozen=True, slots=True)
class StateSettings:
    """Where the last served list is kept across restarts."""

    file: Path | None = setting(
        None, flag="--state-file", env="SEEDSVC_STATE_FILE", parse=values.path, metavar="PATH",
        help="file that keeps the last known list across restarts (default: none)")


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting of the sidecar and the Python API, validated, grouped by concern.

    Build one with :func:`load` (text from flags and variables) or :meth:`build` (typed values keyed
    by option name, for tests and embedding).
    """

    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)
    identity: Identity = field(default_factory=Identity)
    selection: Policy = field(default_factory=Policy)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    state: StateSettings = field(default_factory=StateSettings)
    federation: FederationSettings = field(default_factory=FederationSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)

    @classmethod
    def build(cls, **changes: Any) -> Settings:
        """Defaults, with typed values keyed by :attr:`Option.name` (``count=5, pod_name="x"``)."""
        return cls().replace(**changes)

    def replace(self, **changes: Any) -> Settings:
        """A copy with typed values keyed by :attr:`Option.name`; TypeError for an unknown name."""
        by_group: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            option = OPTIONS_BY_NAME.get(name)
            if option is None:
                raise TypeError(f"unknown setting {name!r}")
            by_group.setdefault(option.group, {})[option.field] = value
        groups = {group: dataclasses.replace(getattr(self, group), **fields) for group, fields in by_group.items()}
        return dataclasses.replace(self, **groups)

    @property
    def resolved_dns_name(self) -> str:
        return self.dns.name or f"{self.discovery.service}.{self.discovery.namespace}.svc.{self.dns.cluster_domain}"


OPTIONS: tuple[Option, ...] = options_of(Settings)
OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


def load(
    flags: Mapping[str, str | None] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    serviceaccount_namespace: Callable[[Path], str | None] | None = None,
    resolv_conf: Path = Path(RESOLV_CONF),
    resolve: Callable[[str], str] | None = None,
) -> Settings:
    """Build :class:`Settings` from flag values (keyed by :attr:`Option.name`) and an environment.

    Empty environment variables count as unset, as Kubernetes renders an absent downward-API field.
    Host names are resolved here, once (``resolve``: the system resolver by default), so a name that
    does not resolve is a configuration error now rather than a failure of a running task later.
    """
    flags = flags or {}
    environ = environ if environ is not None else {}
    unknown = set(flags) - set(OPTIONS_BY_NAME)
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    parsed: dict[str, Any] = {}
    given: dict[str, str] = {}  # option name -> "origin='raw'", for errors found after parsing
    for option in OPTIONS:
        raw, origin = flags.get(option.name), option.flag
        for env in option.envs:
            if raw is None:
                raw, origin = environ.get(env) or None, env
        if raw is None:
            continue
        given[option.name] = f"{origin}={raw!r}"
        try:
            parsed[option.name] = option.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid {given[option.name]}: {exc}") from None
    _resolve_host_names(parsed, given, resolve or first_address)

    sa_dir = parsed.get("serviceaccount_dir", Path(SERVICEACCOUNT_DIR))
    if "namespace" not in parsed:
        parsed["namespace"] = (serviceaccount_namespace or _read_namespace)(sa_dir) or "default"
    if "cluster_domain" not in parsed:
        parsed["cluster_domain"] = cluster_domain_from_resolv_conf(resolv_conf) or "cluster.local"
    settings = Settings.build(**parsed)
    _check_consistency(settings)
    return settings


def first_address(host: str) -> str:
    """The first IPv4 address of ``host``, else its first IPv6 one; OSError when it has none.

    IPv4 first because a name like ``localhost`` has both, and a server on loopback usually listens
    on 127.0.0.1 only.
    """
    found = [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)]
    addresses = [str(a) for a in found if ":" not in str(a)] + [str(a) for a in found if ":" in str(a)]
    if not addresses:
        raise OSError(f"no address for {host}")
    return values.address(addresses[0])


def _resolve_host_names(parsed: dict[str, Any], given: Mapping[str, str], resolve: Callable[[str], str]) -> None:
    """The DNS source needs its nameserver as an address; the listen address must exist to bind."""
    def resolved(name: str, host: str) -> str:
        try:
            return resolve(host)
        except (OSError, UnicodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"invalid {given[name]}: cannot resolve {host}: {reason}") from None

    nameserver = parsed.get("dns_nameserver")
    if nameserver is not None and not values.is_ip_literal(nameserver[0]):
        parsed["dns_nameserver"] = (resolved("dns_nameserver", nameserver[0]), nameserver[1])
    listen = parsed.get("host")
    if listen is not None and not values.is_ip_literal(listen):
        resolved("host", listen)  # aiohttp binds every address of the name; it only has to have one


def _check_consistency(settings: Settings) -> None:
    if settings.discovery.source == "static" and not settings.selection.static_seeds:
        raise ConfigError("invalid SEEDSVC_SOURCE='static': needs CASSANDRA_SEEDS (--seeds)")
    if settings.dns.min_refresh > settings.dns.max_refresh:
        raise ConfigError(
            f"invalid SEEDSVC_DNS_MIN_REFRESH={settings.dns.min_refresh:g}: "
            f"greater than SEEDSVC_DNS_MAX_REFRESH={settings.dns.max_refresh:g}"
        )
    problem = federation_settings.check(settings.federation) or relay_settings.check(
        settings.relay, settings.discovery.source, settings.identity.pod_ip)
    if problem is not None:
        raise ConfigError(problem)


def _read_namespace(serviceaccount_dir: Path) -> str | None:
    try:
        text = (serviceaccount_dir / "namespace").read_text().strip()
    except OSError:
        return None
    return text if values.DNS1123_LABEL.fullmatch(text) else None


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


def configuration_tables() -> str:
    """The per-group tables of docs/configuration.md (tests/test_docs.py checks the page is current)."""
    return markdown_tables(Settings)
