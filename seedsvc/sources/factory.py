"""Builds the configured source, and runs its access checks for ``seedsvc check``."""

from __future__ import annotations

from seedsvc.settings import Settings
from seedsvc.sources.checks import Check
from seedsvc.sources.events import Source


def build_source(settings: Settings) -> Source:
    """The source ``settings.discovery.source`` names; imports are local so each kind loads only its own I/O."""
    if settings.discovery.source == "static":
        from seedsvc.sources.static import StaticSource

        return StaticSource(settings.selection.static_seeds)
    if settings.discovery.source == "dns":
        from seedsvc.sources.dns import DnsSource

        return DnsSource(settings)
    if settings.discovery.source == "relay":
        from seedsvc.sources.relay import build_relay_source

        return build_relay_source(settings)
    from seedsvc.sources.kubernetes import KubernetesSource

    return KubernetesSource(settings)


async def diagnose(settings: Settings) -> list[Check]:
    """Every check the configured source can make; never raises for an unreachable peer."""
    if settings.discovery.source == "static":
        seeds = settings.selection.static_seeds
        return [Check("static seeds", bool(seeds), ",".join(seeds) or "CASSANDRA_SEEDS is empty")]
    if settings.discovery.source == "dns":
        from seedsvc.sources.dns import diagnose as diagnose_dns

        return await diagnose_dns(settings)
    if settings.discovery.source == "relay":
        from seedsvc.sources.relay import diagnose as diagnose_relay

        return await diagnose_relay(settings)
    from seedsvc.sources.kubernetes import diagnose as diagnose_kubernetes

    return await diagnose_kubernetes(settings)
