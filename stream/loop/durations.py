"""A fixed-bucket histogram of durations, cheap enough to record every batch's stages (a bisect
and two additions), read from another thread by the metrics endpoint."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

BOUNDS_S: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
"""Upper bounds of the buckets, in seconds (a last bucket holds anything longer)."""


@dataclass
class Durations:
    """How many durations fell at or under each bound (``counts[i]``: in
    ``(bounds[i-1], bounds[i]]``; the last entry: over every bound), and their sum."""

    bounds: tuple[float, ...] = BOUNDS_S
    counts: list[int] = field(init=False)
    total_s: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total_s += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, durations at or under it), the last bound infinite: Prometheus's form."""
        out, running = [], 0
        for bound, n in zip([*self.bounds, float("inf")], list(self.counts), strict=True):
            running += n
            out.append((bound, running))
        return out
