"""A message larger than the producer accepts, on the real broker: dead-lettered (cut to fit,
saying so), and the consumer goes on."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kit import RunningConsumers, publish, view_message

from stream.behaviour.processor import BehaviourConsumer, BehaviourProcessor
from stream.collections import USERS
from stream.kafka.config import producer_config
from stream.kafka.fit import HEADER_TRUNCATED, HEADER_VALUE_BYTES
from stream.kafka.inspect import read_topic
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def test_a_message_over_the_producers_limit_is_dead_lettered_cut_and_later_ones_processed(
    make_settings: Callable[..., Settings],
) -> None:
    """A behaviour event of 1.5 MB (over RECSTREAM_MAX_MESSAGE_BYTES, and over the 1 MiB the
    consumer's producer accepts) between valid ones. Its dead letter, whole, would be refused
    by the producer on every retry until the process exits, and again after each restart. It
    lands in the DLQ with its first bytes, the reason and headers saying it was cut and its
    original size; the consumer keeps running and every later event is processed."""
    settings = make_settings(max_message_bytes=1_024, retry_budget_s=5.0, retry_backoff_ms=50)
    limit = producer_config(settings)["message.max.bytes"]
    huge = view_message("u-huge", 0)[1][:-1] + b', "pad": "' + b"x" * 1_500_000 + b'"}'
    assert len(huge) > limit
    before = [view_message(f"u-{n}", n) for n in range(1, 6)]
    after = [view_message(f"u-{n}", n) for n in range(6, 11)]
    # published by a producer that accepts it (the broker does)
    roomy = settings.model_copy(update={"max_message_bytes": 1_000_000})
    publish(roomy, settings.topic_user_events, [*before, (b"u-huge", huge), *after])
    store = EdgeStore(settings.qdrant_path)
    try:
        consumer = BehaviourConsumer(settings, BehaviourProcessor(settings, store, 16))
        with RunningConsumers([consumer]) as running:
            running.wait_caught_up(timeout_s=120)
        users = store.retrieve(USERS, [f"u-{n}" for n in range(1, 11)])
    finally:
        store.close()
    assert sorted(users) == sorted(f"u-{n}" for n in range(1, 11))
    [dead] = read_topic(settings, settings.dlq_topic(settings.topic_user_events))
    assert dead.key == b"u-huge"
    assert dead.headers["recstream.error"] == b"too_large"
    assert dead.headers[HEADER_TRUNCATED] == b"value"
    assert dead.headers[HEADER_VALUE_BYTES] == str(len(huge)).encode()
    assert dead.value is not None and huge.startswith(dead.value)
    assert limit - 64 * 1024 < len(dead.value) < limit
