"""Results of ``seedsvc check``: each access check a source can run, as plain data."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    """One diagnosis step; ``detail`` says what was tried and, on failure, what to change."""

    name: str
    ok: bool
    detail: str
