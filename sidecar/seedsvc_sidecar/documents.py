"""The JSON documents the sidecar serves and prints, built from a :class:`SeedList`; no I/O here.

The seeds document itself is :func:`seedsvc.seedlist.seeds_document`, shared with the Python API's
callers and the state file.
"""

from __future__ import annotations

from typing import Any

from seedsvc.seedlist import SeedList, rfc3339, seeds_document

__all__ = ["readiness_document", "seeds_document", "unservable_reason"]


def readiness_document(snapshot: SeedList) -> dict[str, Any]:
    """``GET /readyz``: whether a list can be served, and the last discovery error if any."""
    document: dict[str, Any] = {
        "servable": snapshot.servable,
        "stale": snapshot.stale,
        "mode": str(snapshot.mode),
        "reason": snapshot.reason,
        "seeds": len(snapshot.seeds),
        "generation": snapshot.generation,
        "source": snapshot.source,
        "updated_at": rfc3339(snapshot.updated_at),
        "last_success": rfc3339(snapshot.last_success),
        "last_error": snapshot.last_error,
        "last_error_reason": snapshot.last_error_reason,
    }
    if snapshot.datacenter is not None:
        # Readiness is about this DC's answer; a failing peer is detail, never a reason to fail it.
        document["datacenter"] = snapshot.datacenter
        document["failing_peers"] = {dc.name: dc.reason for dc in snapshot.datacenters if dc.stale and not dc.own}
    return document


def unservable_reason(snapshot: SeedList) -> str:
    """One line for a 503 or a failed ``seedsvc seeds``: why there is no list, and the last error."""
    line = f"no seed list to serve: {snapshot.reason}"
    if snapshot.last_error:
        line += f"; last error ({snapshot.last_error_reason}): {snapshot.last_error}"
    return " ".join(line.split())
