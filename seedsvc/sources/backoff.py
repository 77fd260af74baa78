"""Capped exponential backoff with full jitter, shared by every source that retries."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delays of ``initial * 2**n`` capped at ``maximum``, each drawn uniformly from [delay/2, delay].

    Half-jitter rather than full jitter keeps a floor, so a fleet of sidecars behind a failing API
    server spreads out without some of them retrying almost at once.
    """

    initial: float = 0.5
    maximum: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    _attempt: int = 0

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * (2 ** min(self._attempt, 32)))
        self._attempt += 1
        return self.rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self._attempt = 0
