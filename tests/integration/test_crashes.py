"""SIGKILL at random moments: a real `recstream run all` process is killed again and again
while catalogue and behaviour events flow; the final outputs equal an uninterrupted run's."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import reference
from kit import (
    RunningConsumer,
    RunningConsumers,
    assert_lists_match_brute_force,
    behaviour_consumers,
    committed_count,
    event_bytes,
    feed_slowly,
    final_lists,
    final_recommendations,
    publish,
    settings_env,
    upsert_event,
)

from encoders import Encoder
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from stream.collections import ITEMS
from stream.kafka.inspect import group_lag
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration

CRASHY = Path(__file__).parents[1] / "support" / "crashy.py"


def _progress(settings: Settings) -> int:
    return committed_count(
        settings, settings.catalog_group(), settings.topic_items
    ) + committed_count(settings, settings.behaviour_group(), settings.topic_user_events)


def _left(settings: Settings) -> int:
    """Input messages not committed yet by the catalog and behaviour groups."""
    return group_lag(settings, settings.catalog_group(), settings.topic_items) + group_lag(
        settings, settings.behaviour_group(), settings.topic_user_events
    )


def test_sigkill_at_random_moments_loses_nothing(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """At least 5 SIGKILLs (random moments, mostly mid-batch while encoding, and two right
    between a batch's store write and its publish; once every input is committed, the rest
    idle), each followed by a restart, end with every
    neighbour list equal to the brute-force top-k and every recommendation equal to the
    reference; every input offset is committed."""
    rng = random.Random(61)
    settings = make_settings(
        weight_view=0.0,
        rank_candidates=500,
        cooccurrence_max=1_000,
        history_max=100,
        batch_max_items=24,
        kafka_session_timeout_ms=6_000,
        kafka_max_poll_interval_ms=30_000,
    )
    items = sample_items(160, seed=62)
    behaviour = sample_behaviour(items[:-3], users=120, seed=63)
    catalogue = [event_bytes(upsert_event(i, 1, "item.created")) for i in items]

    # events keep arriving while the process is killed
    feeder = feed_slowly(settings, catalogue, behaviour, (40, 150), 1.0)
    kills = injected = 0
    env = settings_env(settings)
    for round_ in range(6):
        inject = round_ in (1, 3)
        env["RECSTREAM_TEST_KILL_BEFORE_PUBLISH"] = "2" if inject else "0"
        before = _progress(settings)
        proc = subprocess.Popen([sys.executable, str(CRASHY)], env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while (
            proc.poll() is None
            and _progress(settings) <= before
            and not (not feeder.is_alive() and _left(settings) == 0)  # all done: kill it idle
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        if proc.poll() is None:
            time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside the next batch
            proc.send_signal(signal.SIGKILL)
        rc = proc.wait(timeout=30)
        assert rc == -signal.SIGKILL, f"round {round_}: exit {rc}"
        kills += 1
        injected += inject
    feeder.join()
    print(f"kills survived: {kills} ({injected} between store write and publish)")
    assert kills >= 5

    store = EdgeStore(settings.qdrant_path)
    try:
        with (
            RunningConsumer(settings, encoder, store) as catalog,
            RunningConsumers(behaviour_consumers(settings, store, encoder.dim)) as running,
        ):
            catalog.wait_caught_up()
            running.wait_caught_up()
            end = max(reference.parse(e).at for e in behaviour) + timedelta(days=1)
            users = [*sorted({e["user_id"] for e in behaviour}), "u-cold-1"]
            quiet = [i["item_id"] for i in items[-3:]]
            triggers = reference.trigger_events(users, items, quiet, end, rng)
            publish(settings, settings.topic_user_events, map(event_bytes, triggers))
            running.wait_caught_up()
        assert store.count(ITEMS) == len(items)
        assert_lists_match_brute_force(final_lists(settings), store, settings.neighbours_k)
        vectors = reference.ranked_vectors(store, settings)
    finally:
        store.close()
    got = final_recommendations(settings)
    assert set(got) == set(users)
    reference.assert_recommendations(settings, got, behaviour, triggers, items, vectors, set())
