"""The JSON documents the sidecar serves and prints, built from a :class:`Snapshot`; no I/O here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from seedsvc.federation import DatacenterStatus
from seedsvc.state import Snapshot, candidate_json


def rfc3339(moment: datetime | None) -> str | None:
    """UTC with a ``Z`` suffix; a naive time (an old state file) is taken to be UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seeds_document(snapshot: Snapshot) -> dict[str, Any]:
    """``GET /seeds?format=json`` and ``seedsvc seeds --json`` (DESIGN.md section 3)."""
    document = {
        "seeds": list(snapshot.served),
        "generation": snapshot.generation,
        "source": snapshot.source,
        "mode": str(snapshot.mode),
        "stale": snapshot.stale,
        "updated_at": rfc3339(snapshot.updated_at),
        "reason": snapshot.reason,
        "candidates": [candidate_json(c) for c in snapshot.candidates],
    }
    if snapshot.datacenter is not None:
        document["datacenter"] = snapshot.datacenter
        document["datacenters"] = {dc.name: _datacenter_json(dc) for dc in snapshot.datacenters}
    return document


def _datacenter_json(dc: DatacenterStatus) -> dict[str, Any]:
    return {"seeds": list(dc.seeds), "stale": dc.stale, "updated_at": rfc3339(dc.updated_at), "reason": dc.reason}


def readiness_document(snapshot: Snapshot) -> dict[str, Any]:
    """``GET /readyz``: whether a list can be served, and the last discovery error if any."""
    document: dict[str, Any] = {
        "servable": snapshot.servable,
        "stale": snapshot.stale,
        "mode": str(snapshot.mode),
        "reason": snapshot.reason,
        "seeds": len(snapshot.served),
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


def unservable_reason(snapshot: Snapshot) -> str:
    """One line for a 503 or a failed ``seedsvc seeds``: why there is no list, and the last error."""
    line = f"no seed list to serve: {snapshot.reason}"
    if snapshot.last_error:
        line += f"; last error ({snapshot.last_error_reason}): {snapshot.last_error}"
    return " ".join(line.split())
