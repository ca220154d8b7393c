"""Which partitions a group could no longer read whole since its commit (a rollback's check)."""

from __future__ import annotations

from stream.kafka.offsets import lost_partitions


def test_a_partition_is_lost_when_the_broker_no_longer_holds_the_committed_offset() -> None:
    """Committed at or past the first offset kept: nothing lost; below it, or no commit while
    the partition no longer starts at 0: events the group never read are gone."""
    low = {0: 0, 1: 50, 2: 50, 3: 0}
    committed = {0: 10, 1: 50, 2: 49}  # partition 3: never committed, holds everything
    assert lost_partitions(committed, low) == [2]
    assert lost_partitions({0: 10}, {0: 0, 1: 5}) == [1]
    assert lost_partitions({}, {0: 0}) == []
