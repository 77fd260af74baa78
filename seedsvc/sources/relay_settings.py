"""The relay-mode settings group: where a sidecar in ``--source relay`` finds its datacenter's relays."""

from __future__ import annotations

from dataclasses import dataclass

from seedsvc.federation_settings import peer_url
from seedsvc.options import setting

MAX_RELAYS = 16


def relay_urls(value: str) -> tuple[str, ...]:
    """``URL[,URL...]``: http(s) base URLs of relays, tried in the order given; duplicates dropped."""
    urls = tuple(dict.fromkeys(peer_url(item) for item in value.split(",") if item.strip()))
    if not urls:
        raise ValueError("no relay URL given")
    if len(urls) > MAX_RELAYS:
        raise ValueError(f"{len(urls)} relay URLs, more than {MAX_RELAYS}")
    return urls


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """Relay mode: this sidecar learns its datacenter from relays instead of watching the API."""

    urls: tuple[str, ...] = setting(
        (), flag="--relay-urls", env="SEEDSVC_RELAY_URLS", parse=relay_urls, metavar="URL,...",
        help="base URLs of this datacenter's relays (seedsvc serve without a pod identity), tried in "
        "order; needs --source relay")
    """Several URLs fail over in order; one URL of a Service in front of 2-3 relays also works, and
    then the Service's load balancing does the failing over for new connections."""


def check(group: RelaySettings, source: str, pod_ip: str | None) -> str | None:
    """The inconsistency between the relay group and the chosen source as the one-line error, or None."""
    if source == "relay" and not group.urls:
        return "invalid SEEDSVC_SOURCE='relay': needs SEEDSVC_RELAY_URLS (--relay-urls)"
    if source == "relay" and pod_ip is None:
        # A watching sidecar can find its own address in the Service; the digest has only a few records.
        return "invalid SEEDSVC_SOURCE='relay': needs POD_IP (--pod-ip), the pod's own address"
    if source != "relay" and group.urls:
        return f"invalid SEEDSVC_RELAY_URLS={','.join(group.urls)!r}: needs SEEDSVC_SOURCE=relay (--source relay)"
    return None
