"""One migration or rollback at a time: the store's claim, on a real store, with a clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.migration.claim import CLAIM, LEASE_S, RENEW_S, Claimed, claimed
from stream.store.edge import EdgeStore
from stream.store.model_record import MODELS


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_second_migration_is_refused_while_the_first_holds_the_claim(tmp_path: Path) -> None:
    """Refused while held (saying what holds it); free again once the first ends."""
    store = EdgeStore(str(tmp_path / "store"))
    clock = Clock()
    try:
        with claimed(store, "building /models/a", clock):
            clock.now += LEASE_S - 1
            with pytest.raises(Claimed, match="building /models/a"), claimed(store, "b", clock):
                pass
        assert CLAIM not in store.retrieve(MODELS, [CLAIM])
        with claimed(store, "rolling back", clock):
            pass
    finally:
        store.close()


def test_a_claim_left_unrenewed_for_the_lease_is_taken_over(tmp_path: Path) -> None:
    """A migration that died leaves its claim; one lease later another takes it, and the dead
    one's end (had it come back) would not remove the new holder's claim."""
    store = EdgeStore(str(tmp_path / "store"))
    clock = Clock()
    try:
        dead = claimed(store, "building /models/a", clock)
        dead.__enter__()
        clock.now += LEASE_S + 1
        with claimed(store, "building /models/b", clock) as renew:
            clock.now += RENEW_S
            renew()
            held = store.retrieve(MODELS, [CLAIM])[CLAIM].payload
            assert held["doing"] == "building /models/b" and held["renewed_at"] == clock.now
            dead.__exit__(None, None, None)
            assert store.retrieve(MODELS, [CLAIM])[CLAIM].payload["doing"] == "building /models/b"
    finally:
        store.close()
