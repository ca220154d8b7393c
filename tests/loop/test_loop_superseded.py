"""A consumer whose work is superseded (the store switched generation under it: see
``stream.generations``) publishes and commits nothing more, and stops; on the real broker."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from kit import committed_count, final_recommendations, publish, view_message, wait_for

from stream.behaviour.processor import BehaviourConsumer, BehaviourProcessor
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def test_a_superseded_batch_is_neither_published_nor_committed_and_the_consumer_stops(
    make_settings: Callable[..., Settings],
) -> None:
    """Events before the switch get their recommendations and are committed; the batch after
    it is dropped before its publish: no recommendation for its shoppers, its offsets left for
    the generation that superseded this one, and the consumer's loop ends by itself."""
    settings = make_settings()
    topic = settings.topic_user_events
    publish(settings, topic, [view_message(f"u-{n}", n) for n in range(1, 6)])
    store = EdgeStore(settings.qdrant_path)
    reason: list[str] = []
    stop = threading.Event()
    try:
        consumer = BehaviourConsumer(settings, BehaviourProcessor(settings, store, 16))
        consumer.superseded = lambda: reason[0] if reason else None
        runner = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        runner.start()
        group = settings.behaviour_group()
        wait_for(lambda: committed_count(settings, group, topic) == 5, what="the first commits")
        reason.append("the store serves generation 1 now, not 0")
        publish(settings, topic, [view_message(f"u-{n}", n) for n in range(6, 9)])
        runner.join(60)
        assert not runner.is_alive(), "the consumer went on after its work was superseded"
    finally:
        stop.set()
        store.close()
    assert committed_count(settings, group, topic) == 5
    assert sorted(final_recommendations(settings)) == [f"u-{n}" for n in range(1, 6)]
