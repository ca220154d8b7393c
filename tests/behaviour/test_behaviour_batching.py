"""How the behaviour consumers batch: the behaviour consumer has its own wait."""

from __future__ import annotations

from collections.abc import Callable

from stream.runner import build_consumers
from stream.settings import Settings
from stream.store.edge import EdgeStore


def test_the_behaviour_consumer_waits_its_own_time_and_the_item_stats_the_shared_one(
    make_settings: Callable[..., Settings],
) -> None:
    """RECSTREAM_BEHAVIOUR_BATCH_MAX_WAIT_MS sets the behaviour consumer's wait (default 0: a
    lone event is ranked at once); the item-stats consumer keeps RECSTREAM_BATCH_MAX_WAIT_MS."""
    for own, shared in ((None, 50), (120, 40)):
        chosen = {} if own is None else {"behaviour_batch_max_wait_ms": own}
        settings = make_settings(batch_max_wait_ms=shared, **chosen)
        store = EdgeStore(settings.qdrant_path)
        try:
            behaviour, stats = build_consumers(settings, "behaviour", store)
            assert behaviour._batcher.max_wait_s == (own or 0) / 1000
            assert stats._batcher.max_wait_s == shared / 1000
            assert behaviour._batcher.max_items == settings.batch_max_items
            behaviour.processor.close()
        finally:
            store.close()
