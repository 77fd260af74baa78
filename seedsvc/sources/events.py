"""The plain events every source yields; no I/O here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from seedsvc.records import Endpoint


@dataclass(frozen=True, slots=True)
class View:
    """The complete current set of candidate endpoints, not a delta."""

    endpoints: tuple[Endpoint, ...]
    skipped: int = 0
    """Records the source could not use (malformed objects, FQDN slices, bad DNS data)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt. ``reason`` is a short, stable label for metrics (``forbidden``,
    ``unauthorized``, ``unreachable``, ``timeout``, ``server_error``, ``bad_response``, ``nxdomain``,
    ``servfail``, ...); ``detail`` is the human sentence for logs and ``/readyz``."""

    reason: str
    detail: str
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class Restart:
    """A long-lived stream was re-established; ``reason`` says why (``expired``, ``closed``, ...)."""

    reason: str


SourceEvent = View | Failure | Restart


class Source(Protocol):
    @property
    def name(self) -> str: ...

    def updates(self) -> AsyncIterator[SourceEvent]: ...
