"""Builds the configured source, and runs its access checks for ``seedsvc check``."""

from __future__ import annotations

from seedsvc.settings import Settings
from seedsvc.sources.checks import Check
from seedsvc.sources.events import Source


def build_source(settings: Settings) -> Source:
    """The source that ``settings.source`` names; imports are local so each kind only loads its own I/O."""
    if settings.source == "static":
        from seedsvc.sources.static import StaticSource

        return StaticSource(settings.seeds)
    if settings.source == "dns":
        from seedsvc.sources.dns import DnsSource

        return DnsSource(settings)
    from seedsvc.sources.kubernetes import KubernetesSource

    return KubernetesSource(settings)


async def diagnose(settings: Settings) -> list[Check]:
    """Every check the configured source can make; never raises for an unreachable peer."""
    if settings.source == "static":
        return [Check("static seeds", bool(settings.seeds), ",".join(settings.seeds) or "CASSANDRA_SEEDS is empty")]
    if settings.source == "dns":
        from seedsvc.sources.dns import diagnose as diagnose_dns

        return await diagnose_dns(settings)
    from seedsvc.sources.kubernetes import diagnose as diagnose_kubernetes

    return await diagnose_kubernetes(settings)
