"""The micro-batching policy, driven by a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.loop.batching import MicroBatcher


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(
    max_items: int = 3, max_tokens: int = 100, max_wait_s: float = 0.05
) -> tuple[MicroBatcher[str], FakeClock]:
    clock = FakeClock()
    return MicroBatcher(max_items, max_tokens, max_wait_s, clock=clock), clock


def test_closes_at_max_items() -> None:
    """The event that fills the batch to max_items returns the closed batch."""
    b, _ = make(max_items=3)
    assert b.add("a", 1) is None
    assert b.add("b", 1) is None
    assert b.add("c", 1) == ["a", "b", "c"]
    assert len(b) == 0


def test_token_budget_closes_before_overflow() -> None:
    """An event that would pass the token budget closes the batch before it and opens the next."""
    b, _ = make(max_items=10, max_tokens=100)
    assert b.add("a", 60) is None
    assert b.add("b", 50) == ["a"]
    assert len(b) == 1 and b.tokens == 50


def test_oversized_event_travels_alone() -> None:
    """An event larger than the whole budget forms a batch of its own."""
    b, _ = make(max_items=10, max_tokens=100)
    assert b.add("a", 10) is None
    assert b.add("huge", 500) == ["a"]
    assert b.flush() == ["huge"]


def test_deadline_counts_from_first_event() -> None:
    """A steady trickle does not postpone the flush: the wait starts at the batch's first event."""
    b, clock = make(max_items=100, max_wait_s=0.05)
    b.add("a", 1)
    for name in "bcd":
        clock.now += 0.02
        b.add(name, 1)
        if clock.now - 100.0 < 0.05:
            assert b.due() is None
    assert clock.now - 100.0 >= 0.05
    assert b.due() == ["a", "b", "c", "d"]


def test_time_left_and_empty_due() -> None:
    """Nothing is due when nothing is open; time_left counts down from the first event."""
    b, clock = make(max_wait_s=0.05)
    assert b.due() is None
    assert b.time_left() == pytest.approx(0.05)
    b.add("a", 1)
    clock.now += 0.03
    assert b.time_left() == pytest.approx(0.02)
    clock.now += 0.03
    assert b.time_left() == 0.0


def test_new_batch_gets_new_deadline() -> None:
    """After a batch closes, the next one's deadline starts at its own first event."""
    b, clock = make(max_items=2, max_wait_s=0.05)
    b.add("a", 1)
    assert b.add("a2", 1) == ["a", "a2"]
    clock.now += 0.01
    assert b.time_left() == pytest.approx(0.05)
    b.add("b", 1)
    clock.now += 0.01
    assert b.time_left() == pytest.approx(0.04)


def test_wait_counts_from_the_first_events_publish() -> None:
    """An event that queued behind a slow batch brings its age: the wait it already did counts,
    and an event older than the whole wait makes its batch due at once. Only the first event's
    age sets the deadline; a negative age (a producer clock ahead of ours) counts as none."""
    b, clock = make(max_items=100, max_wait_s=0.05)
    b.add("a", 1, age_s=0.03)
    assert b.time_left() == pytest.approx(0.02)
    b.add("b", 1, age_s=10.0)  # not the first: the deadline stays
    assert b.time_left() == pytest.approx(0.02)
    clock.now += 0.02
    assert b.due() == ["a", "b"]
    b.add("late", 1, age_s=0.2)
    assert b.due() == ["late"]
    b.add("ahead", 1, age_s=-5.0)
    assert b.time_left() == pytest.approx(0.05)


def test_rejects_impossible_limits() -> None:
    """Limits that cannot form a batch are refused at construction."""
    with pytest.raises(ValueError):
        MicroBatcher(0, 10, 0.1)
    with pytest.raises(ValueError):
        MicroBatcher(1, 10, -1)


@given(
    st.lists(st.integers(min_value=0, max_value=300), max_size=200),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=1, max_value=400),
)
def test_every_event_once_in_order_within_limits(
    tokens: list[int], max_items: int, budget: int
) -> None:
    """Whatever the sizes, each event comes out exactly once, in order, and no batch of more than
    one event passes the item or token limits."""
    b: MicroBatcher[int] = MicroBatcher(max_items, budget, 1.0, clock=FakeClock())
    batches: list[list[int]] = []
    for i, t in enumerate(tokens):
        closed = b.add(i, t)
        if closed is not None:
            batches.append(closed)
    rest = b.flush()
    if rest:
        batches.append(rest)
    assert [i for batch in batches for i in batch] == list(range(len(tokens)))
    for batch in batches:
        assert 1 <= len(batch) <= max_items
        if len(batch) > 1:
            assert sum(tokens[i] for i in batch) <= budget


def test_without_a_wait_the_policy_adapts_to_the_queue() -> None:
    """With RECSTREAM_BATCH_MAX_WAIT_MS=0, a lone event at an idle consumer is due at once (no
    clock time passes), while a backlog added before asking forms full batches: max_items each,
    the rest due together."""
    b, clock = make(max_items=4, max_tokens=1_000, max_wait_s=0.0)
    assert b.add("lone", 1) is None
    assert b.due() == ["lone"]
    closed = [batch for n in range(10) if (batch := b.add(f"q{n}", 1)) is not None]
    assert closed == [["q0", "q1", "q2", "q3"], ["q4", "q5", "q6", "q7"]]
    assert b.due() == ["q8", "q9"]
    assert clock.now == 100.0


def test_a_trickle_is_not_waited_for_and_a_load_is() -> None:
    """Events published further apart than the wait (on the moving average of the gaps between
    their publish times) make a batch due at once: the wait would gather nothing. Events that
    come closer again are waited for, and the first event ever (no gap known) waits."""
    b, clock = make(max_items=100, max_wait_s=0.05)
    b.add("first", 1)
    assert b.due() is None and not b.trickle
    clock.now += 0.05
    assert b.due() == ["first"]
    for name in ("t1", "t2", "t3"):
        clock.now += 0.5
        b.add(name, 1)
        assert b.trickle and b.due() == [name]
    for n in range(40):  # a load: 5 ms apart
        clock.now += 0.005
        b.add(f"l{n}", 1)
        b.due()
    assert not b.trickle
    b.flush()
    clock.now += 0.005
    b.add("next", 1)
    assert b.due() is None  # gathers until its deadline again
    clock.now += 0.05
    assert b.due() == ["next"]
    # an event that queued (published long ago) counts its publish time, not its arrival
    b.add("queued", 1, age_s=0.004)
    assert not b.trickle
