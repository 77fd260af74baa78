"""SeedList: the list being served and how it came about, and its one JSON form; no I/O here.

The same immutable value is what the sidecar serves, what the Python API returns and what the state
file keeps. :func:`seeds_document` is the only place its JSON is built (``GET /seeds?format=json``,
``seedsvc seeds --json``, the state file); :func:`from_seeds_document` reads it back and accepts
nothing it would not have written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from seedsvc.federation import DatacenterStatus
from seedsvc.records import Endpoint, InvalidAddress, seed_address
from seedsvc.selection import Candidate, Mode

MAX_GENERATION = 2**63 - 1
"""Generations go over HTTP as decimal text and into Java longs (the shim's X-Seedsvc-Generation)."""


@dataclass(frozen=True, slots=True)
class SeedList:
    """What is being served right now; immutable, so readers never see a half-made update."""

    seeds: tuple[str, ...] = ()
    """The addresses the caller is served, in order; empty exactly when there is nothing to serve."""
    generation: int = 0
    """Moves by one each time ``seeds`` changes; long-polls wait for it to pass a value."""
    updated_at: datetime | None = None
    """When ``seeds`` last changed."""
    source: str = "none"
    mode: Mode = Mode.UNAVAILABLE
    reason: str = "discovery has not produced a view yet"
    stale: bool = False
    """True while discovery fails (or before it first answers after a restore): the last known list."""
    candidates: tuple[Candidate, ...] = ()
    last_error: str | None = None
    last_error_reason: str | None = None
    last_success: datetime | None = None
    datacenter: str | None = None
    """Several DCs only (DESIGN.md section 7): the own DC's name."""
    datacenters: tuple[DatacenterStatus, ...] = ()
    """Several DCs only: what each DC (the own one included) contributes, and whether it is stale."""

    @property
    def servable(self) -> bool:
        """True when there is a non-empty list to serve; an empty 200 is never an answer."""
        return bool(self.seeds)


def rfc3339(moment: datetime | None) -> str | None:
    """UTC with a ``Z`` suffix, to the millisecond; a naive time (an old state file) is taken to be UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def candidate_document(candidate: Candidate) -> dict[str, Any]:
    e = candidate.endpoint
    return {
        "address": e.address,
        "pod": e.pod,
        "ordinal": e.ordinal,
        "zone": e.zone,
        "ready": e.ready,
        "terminating": e.terminating,
        "seed": candidate.seed,
    }


def seeds_document(seed_list: SeedList) -> dict[str, Any]:
    """The JSON form of a seed list (docs/http-api.md, ``SeedsDocument`` in docs/openapi.yaml)."""
    document = {
        "seeds": list(seed_list.seeds),
        "generation": seed_list.generation,
        "source": seed_list.source,
        "mode": str(seed_list.mode),
        "stale": seed_list.stale,
        "updated_at": rfc3339(seed_list.updated_at),
        "reason": seed_list.reason,
        "candidates": [candidate_document(c) for c in seed_list.candidates],
    }
    if seed_list.datacenter is not None:
        document["datacenter"] = seed_list.datacenter
        document["datacenters"] = {dc.name: datacenter_document(dc) for dc in seed_list.datacenters}
    return document


def datacenter_document(dc: DatacenterStatus) -> dict[str, Any]:
    """One entry of ``datacenters`` (``Datacenter`` in docs/openapi.yaml)."""
    return {"seeds": list(dc.seeds), "stale": dc.stale, "updated_at": rfc3339(dc.updated_at), "reason": dc.reason}


def from_seeds_document(document: object) -> SeedList:
    """The seed list a :func:`seeds_document` describes; ValueError naming the first thing wrong.

    Strict on purpose: the document comes from a file anyone with access to the volume could have
    edited, and whatever it holds is served until discovery answers. ``stale`` and ``reason`` are
    not read back (a restored list is stale by definition).
    """
    fields = _object(document, "document")
    seeds = tuple(_address(item, "seeds[]") for item in _list(fields, "seeds"))
    if not seeds:
        raise ValueError("empty seed list")
    generation = fields.get("generation")
    # bool is an int in Python, and 1e400 or Infinity parse as floats: only a real integer will do.
    if type(generation) is not int or not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"generation is not an integer between 0 and {MAX_GENERATION}")
    mode = fields.get("mode", str(Mode.DISCOVERED))
    if not isinstance(mode, str) or mode not in {str(m) for m in Mode}:
        raise ValueError(f"unknown mode {mode!r:.40}")
    return SeedList(
        seeds=seeds,
        generation=generation,
        updated_at=_moment(fields.get("updated_at")),
        source=_optional_text(fields, "source") or "state-file",
        mode=Mode(mode),
        candidates=tuple(_candidate(item) for item in _list(fields, "candidates", required=False)),
    )


def _candidate(item: object) -> Candidate:
    fields = _object(item, "candidate")
    if "address" not in fields:
        raise ValueError("candidate without address")
    endpoint = Endpoint(
        address=_address(fields["address"], "candidate address"),
        pod=_optional_text(fields, "pod"),
        zone=_optional_text(fields, "zone"),
        ready=_flag(fields, "ready", default=True),
        terminating=_flag(fields, "terminating", default=False),
    )
    return Candidate(endpoint, _flag(fields, "seed", default=False))


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    return value


def _list(fields: dict[str, Any], key: str, *, required: bool = True) -> list[Any]:
    if key not in fields and not required:
        return []
    value = fields.get(key)
    if not isinstance(value, list):
        raise ValueError(f"{key} is not a list")
    return value


def _address(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a string")
    try:
        return seed_address(value)
    except InvalidAddress as exc:
        raise ValueError(str(exc)) from None


def _optional_text(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key} is not a string")
    # Control characters, or a lone surrogate JSON can escape, would never reach a log line intact.
    if not value.isprintable():
        raise ValueError(f"{key} is not printable text")
    return value


def _flag(fields: dict[str, Any], key: str, *, default: bool) -> bool:
    value = fields.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{key} is not true or false")
    return value


def _moment(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("updated_at is not a string")
    try:
        moment = datetime.fromisoformat(value)
        # In UTC now, as it will be served: 9999-12-31T23:59:59-23:59 has no UTC time (OverflowError).
        return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"updated_at is not an ISO 8601 time in range: {value!r:.40}") from None

