"""The micro-batching policy: when is a batch closed?

Pure: no Kafka, no clock of its own. A batch closes when it holds ``max_items`` events, when
adding one more would pass ``max_tokens``, or when ``max_wait_s`` has passed since its *first*
event was published (so a steady trickle cannot postpone a flush forever, and events that queued
behind a slow batch are not made to wait a second time).

The loop adds everything already fetched before it asks :meth:`MicroBatcher.due`, so with
``max_wait_s`` 0 batching adapts to the load without a wait: an idle consumer's first event is
a batch of its own at once, and as a queue forms while a batch is processed, the next batch
takes all of it, up to ``max_items`` and ``max_tokens``. A wait above 0 gives fewer, fuller
batches under a steady load; under a trickle it would gather nothing, so it is not waited: while
events have been published further apart than the wait (a moving average of the gaps between
their timestamps), a batch is due at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


GAP_WEIGHT = 0.2
"""Weight of the newest gap between two events' publish times in the moving average that tells
a trickle (gaps longer than the wait) from a load."""


class MicroBatcher(Generic[T]):
    """Collects events into batches bounded by count, token budget and age."""

    def __init__(
        self,
        max_items: int,
        max_tokens: int,
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_items < 1 or max_tokens < 1 or max_wait_s < 0:
            raise ValueError("max_items and max_tokens must be >= 1 and max_wait_s >= 0")
        self.max_items = max_items
        self.max_tokens = max_tokens
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._events: list[T] = []
        self._sizes: list[int] = []
        self._tokens = 0
        self._opened_at: float | None = None
        self._published: float | None = None
        self._gap: float | None = None

    def __len__(self) -> int:
        return len(self._events)

    @property
    def tokens(self) -> int:
        return self._tokens

    def events(self) -> list[T]:
        """A copy of the open batch (safe to call from another thread)."""
        return list(self._events)

    def add(self, event: T, tokens: int = 0, age_s: float = 0.0) -> list[T] | None:
        """Add one event; returns a closed batch when this event closed one, else None.

        ``age_s``: how long ago the event was published; a batch's wait starts then (a negative
        age, from a clock ahead of ours, counts as 0).

        An event that would push the batch over its token budget closes the current batch
        and starts the next one; an event larger than the whole budget travels alone.
        """
        closed: list[T] | None = None
        if self._events and self._tokens + tokens > self.max_tokens:
            closed = self._take()
        published = self._clock() - max(0.0, age_s)
        if self._published is None:
            self._published = published
        else:
            gap = max(0.0, published - self._published)  # partitions interleave: never < 0
            self._gap = gap if self._gap is None else self._gap + GAP_WEIGHT * (gap - self._gap)
            self._published = max(published, self._published)
        if not self._events:
            self._opened_at = published
        self._events.append(event)
        self._sizes.append(tokens)
        self._tokens += tokens
        if closed is None and (
            len(self._events) >= self.max_items or self._tokens >= self.max_tokens
        ):
            closed = self._take()
        return closed

    def time_left(self) -> float:
        """Seconds until the open batch is due; ``max_wait_s`` when nothing is open, 0 while
        events come further apart than ``max_wait_s`` (the wait would gather none)."""
        if self._opened_at is None:
            return self.max_wait_s
        if self.trickle:
            return 0.0
        return max(0.0, self._opened_at + self.max_wait_s - self._clock())

    @property
    def trickle(self) -> bool:
        """Whether events have lately been published further apart than the wait."""
        return self._gap is not None and self._gap > self.max_wait_s

    def due(self) -> list[T] | None:
        """The open batch if its deadline has passed, else None."""
        if self._events and self.time_left() <= 0:
            return self._take()
        return None

    def discard(self, drop: Callable[[T], bool]) -> int:
        """Take the events ``drop`` picks out of the open batch (those of revoked partitions);
        the batch keeps its deadline. Returns how many were taken."""
        kept = [(e, n) for e, n in zip(self._events, self._sizes, strict=True) if not drop(e)]
        taken = len(self._events) - len(kept)
        if taken:
            self._events = [e for e, _ in kept]
            self._sizes = [n for _, n in kept]
            self._tokens = sum(self._sizes)
            if not self._events:
                self._opened_at = None
        return taken

    def flush(self) -> list[T]:
        """Close and return whatever is open (possibly empty)."""
        return self._take()

    def _take(self) -> list[T]:
        batch, self._events = self._events, []
        self._sizes = []
        self._tokens = 0
        self._opened_at = None
        return batch
