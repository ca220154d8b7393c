"""Rebalances while events flow: members join and leave the consumer groups mid-stream."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import reference
from kit import (
    RunningConsumers,
    assert_lists_match_brute_force,
    behaviour_consumers,
    event_bytes,
    feed_slowly,
    final_lists,
    final_recommendations,
    publish,
    upsert_event,
)

from encoders import Encoder
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from stream.catalog.processor import CatalogConsumer, CatalogProcessor
from stream.catalog.state import CatalogState
from stream.collections import ITEMS
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def settled(members: list[RunningConsumers], partitions: int, timeout_s: float = 60.0) -> None:
    """Until every group's partitions are all owned by one of ``members``."""
    deadline = time.monotonic() + timeout_s
    while True:
        # set.union copies each set in C: safe while the consumer threads change them
        owned = [
            set().union(*(m.consumers[i]._owned for m in members))
            for i in range(len(members[0].consumers))
        ]
        if all(len(o) == partitions for o in owned):
            return
        assert time.monotonic() < deadline, f"groups not settled in {timeout_s}s: {owned}"
        time.sleep(0.2)


def test_members_joining_and_leaving_change_no_final_output(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """Three members (each running the catalog, behaviour and item-stats consumers) join and
    leave one after another while catalogue and behaviour events flow (the default eager range
    assignment; revoked partitions are finished and committed first). At the end every
    neighbour list is the brute-force top-k and every recommendation equals the reference."""
    rng = random.Random(71)
    settings = make_settings(
        weight_view=0.0,
        rank_candidates=500,
        cooccurrence_max=1_000,
        history_max=100,
        batch_max_items=24,
    )
    items = sample_items(140, seed=72)
    behaviour = sample_behaviour(items[:-3], users=120, seed=73)
    catalogue = [event_bytes(upsert_event(i, 1, "item.created")) for i in items]

    store = EdgeStore(settings.qdrant_path)
    state = CatalogState()  # the members share one process, so one store and its copy

    def member() -> RunningConsumers:
        catalog = CatalogConsumer(settings, CatalogProcessor(settings, encoder, store, state))
        return RunningConsumers([catalog, *behaviour_consumers(settings, store, encoder.dim)])

    try:
        feeder = feed_slowly(settings, catalogue, behaviour, (20, 100), 0.7)
        a = member()
        a.start()
        time.sleep(4)
        b = member()
        b.start()
        time.sleep(4)
        c = member()
        c.start()
        time.sleep(4)
        a.stop()
        time.sleep(4)
        # b leaves once the group has handed out a's partitions: a member leaving while the
        # others are still rejoining left the embedded broker's groups unassigned for good
        # (seen once in a full run; a broker fault, not recstream's, which Apache Kafka handles)
        settled([b, c], settings.topic_partitions)
        b.stop()
        feeder.join()
        for m in (a, b):
            assert m.error is None, m.error
        c.wait_caught_up()
        end = max(reference.parse(e).at for e in behaviour) + timedelta(days=1)
        users = [*sorted({e["user_id"] for e in behaviour}), "u-cold-1"]
        quiet = [i["item_id"] for i in items[-3:]]
        triggers = reference.trigger_events(users, items, quiet, end, rng)
        publish(settings, settings.topic_user_events, map(event_bytes, triggers))
        c.wait_caught_up()
        c.stop()
        revoked = sum(m.consumers[0].progress.batches for m in (a, b, c))
        print(f"catalog batches by member: {[m.consumers[0].progress.batches for m in (a, b, c)]}")
        assert revoked > 0
        assert store.count(ITEMS) == len(items)
        assert_lists_match_brute_force(final_lists(settings), store, settings.neighbours_k)
        vectors = reference.ranked_vectors(store, settings)
    finally:
        store.close()
    got = final_recommendations(settings)
    assert set(got) == set(users)
    reference.assert_recommendations(settings, got, behaviour, triggers, items, vectors, set())
