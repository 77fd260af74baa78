"""Backoff: capped exponential delays with half jitter, and reset after success."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from seedsvc.sources.backoff import Backoff


class Highest(random.Random):
    """An rng that always draws the top of the range, to see the un-jittered schedule."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


def delays(backoff: Backoff, n: int) -> list[float]:
    return [backoff.next_delay() for _ in range(n)]


def test_delays_double_from_initial_until_the_cap() -> None:
    assert delays(Backoff(initial=0.5, maximum=30.0, rng=Highest()), 9) == [
        0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0
    ]


def test_jitter_never_goes_below_half_the_delay() -> None:
    assert delays(Backoff(initial=0.5, maximum=30.0, rng=Lowest()), 8) == [
        0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0
    ]


def test_reset_starts_again_from_initial() -> None:
    backoff = Backoff(initial=1.0, maximum=60.0, rng=Highest())
    assert delays(backoff, 4) == [1.0, 2.0, 4.0, 8.0]
    backoff.reset()
    assert delays(backoff, 2) == [1.0, 2.0]


def test_cap_holds_after_very_many_attempts() -> None:
    backoff = Backoff(initial=0.5, maximum=30.0, rng=Highest())
    assert max(delays(backoff, 5000)) == 30.0


def test_initial_above_the_cap_is_capped() -> None:
    assert delays(Backoff(initial=50.0, maximum=30.0, rng=Highest()), 2) == [30.0, 30.0]


def test_sidecars_with_their_own_rng_spread_out() -> None:
    # A fleet retrying against one failing API server: the fourth delays must not coincide.
    fourth = {delays(Backoff(initial=0.5, maximum=30.0, rng=random.Random(seed)), 4)[-1] for seed in range(50)}
    assert len(fourth) == 50
    assert all(2.0 <= d <= 4.0 for d in fourth)


def test_default_backoff_uses_its_own_rng() -> None:
    a, b = Backoff(), Backoff()
    assert a.rng is not b.rng


@given(
    initial=st.floats(0.001, 10.0),
    factor=st.floats(1.0, 1000.0),
    attempts=st.integers(1, 80),
    seed=st.integers(0, 2**32),
)
def test_every_delay_lies_between_half_and_all_of_the_capped_delay(
    initial: float, factor: float, attempts: int, seed: int
) -> None:
    maximum = initial * factor
    backoff = Backoff(initial=initial, maximum=maximum, rng=random.Random(seed))
    for n, delay in enumerate(delays(backoff, attempts)):
        ceiling = min(maximum, initial * 2**n)
        assert ceiling / 2 <= delay <= ceiling
        assert delay <= maximum
