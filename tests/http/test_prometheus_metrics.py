"""/metrics of running consumers, on a real uvicorn server with a real client, real consumers on
the real broker, the real model and a real embedded store: lag, dead letters by reason, encoder
counters, stage histograms, retries and freshness move as events flow."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from api import serving
from faults import FlakyStore
from kit import (
    RunningConsumer,
    RunningConsumers,
    behaviour_consumers,
    created,
    event_bytes,
    publish,
    wait_for,
)
from scrape import by, samples

from encoders import Encoder
from encoders.hybrid import vector_dimension
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration

DIM = vector_dimension(Settings())


def _consumer_sum(text: str, name: str, consumer: str) -> float:
    """The sum of a family's samples of one consumer (over its other labels)."""
    return sum(
        v for labels, v in samples(text, name).items() if dict(labels)["consumer"] == consumer
    )


def _scrape(client: httpx.Client) -> str:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return answer.text


def test_catalog_metrics_count_encoder_work_stages_and_dead_letters_by_reason(
    make_settings: Callable[..., Settings], encoder: Encoder
) -> None:
    """Items and one message that is not JSON flow through the catalog consumer: the dead letter
    counts under its reason, the encoder's texts are the items and its tokens more, every batch
    has an encode, store, lists, publish and commit duration, and once the group has committed
    everything its lag on every partition and its freshness gauge are 0."""
    settings = make_settings()
    items = sample_items(24, seed=4)
    publish(settings, settings.topic_items, [*created(items), (b"sku-bad", b"{not json")])
    store = EdgeStore(settings.qdrant_path)
    topic = settings.topic_items
    try:
        with (
            RunningConsumer(settings, encoder, store) as running,
            serving(settings, store, running.consumers) as client,
        ):
            running.wait_caught_up()

            def settled() -> bool:
                # lag comes with librdkafka's statistics reports (every few seconds)
                lag = samples(_scrape(client), "recstream_consumer_lag_messages")
                return bool(lag) and not any(lag.values())

            wait_for(settled, 60, "a statistics report after the commits")
            text = _scrape(client)
        reasons = samples(text, "recstream_consumer_dead_letters_by_reason_total")
        assert reasons == {by(consumer=topic, reason="invalid_json"): 1}
        assert samples(text, "recstream_consumer_dead_letters_total")[by(consumer=topic)] == 1
        texts = samples(text, "recstream_encoder_texts_total")[by(consumer=topic)]
        tokens = samples(text, "recstream_encoder_tokens_total")[by(consumer=topic)]
        assert texts == len(items)
        assert tokens > 5 * texts  # a product text is several words
        lag = samples(text, "recstream_consumer_lag_messages")
        assert {dict(labels)["topic"] for labels in lag} == {topic}
        assert len(lag) == settings.topic_partitions
        assert samples(text, "recstream_consumer_oldest_unpublished_seconds") == {
            by(consumer=topic): 0.0
        }
        batches = samples(text, "recstream_consumer_batches_total")[by(consumer=topic)]
        stages = samples(text, "recstream_batch_stage_seconds_count")
        for stage in ("encode", "store", "lists", "process", "publish", "confirm", "commit"):
            assert stages[by(consumer=topic, stage=stage)] == batches, stage
        assert samples(text, "recstream_consumer_retries_total")[by(consumer=topic)] == 0
    finally:
        store.close()


def test_lag_freshness_and_retries_while_the_store_fails(
    make_settings: Callable[..., Settings],
) -> None:
    """While the store fails, the behaviour consumer's lag is every event published, its oldest
    unpublished event ages, and its failed attempts count as retries and store errors; once the
    store is back and the events are committed, lag and freshness return to 0."""
    settings = make_settings(retry_backoff_ms=50, retry_max_backoff_ms=300)
    store = FlakyStore(EdgeStore(settings.qdrant_path))
    consumers = behaviour_consumers(settings, store, DIM)
    topic = settings.topic_user_events
    events = sample_behaviour(sample_items(10), users=4, seed=5)
    try:
        with serving(settings, store, consumers) as client, RunningConsumers(consumers) as running:

            def joined() -> bool:
                return client.get("/readyz").status_code == 200

            wait_for(joined, 120, "the consumers to join")
            store.failing.set()
            publish(settings, topic, map(event_bytes, events))

            def lagging() -> bool:
                text = _scrape(client)
                lag = _consumer_sum(text, "recstream_consumer_lag_messages", topic)
                return lag == len(events)

            wait_for(lagging, 120, "the lag of the events not committed")
            down = _scrape(client)
            assert _consumer_sum(down, "recstream_consumer_retries_total", topic) > 0
            assert _consumer_sum(down, "recstream_consumer_store_errors_total", topic) > 0
            age = "recstream_consumer_oldest_unpublished_seconds"
            assert samples(down, age)[by(consumer=topic)] > 0

            store.failing.clear()
            running.wait_caught_up()

            def settled() -> bool:
                text = _scrape(client)
                lag = _consumer_sum(text, "recstream_consumer_lag_messages", topic)
                return lag == 0 and samples(text, age)[by(consumer=topic)] == 0

            wait_for(settled, 60, "lag and freshness back to 0")
    finally:
        store.inner.close()
