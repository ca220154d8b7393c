"""Dead letters keep the failed message's own headers beside recstream's, and their detail is
cut at the 1,000 characters the README promises."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from kit import RunningConsumers, behaviour_consumers

from encoders.hybrid import vector_dimension
from schemas.errors import InvalidEvent
from stream.kafka.config import producer_config
from stream.kafka.dlq import HEADER_DETAIL, HEADER_ERROR, HEADER_SOURCE, LocalMessage, dead_letter
from stream.kafka.inspect import read_topic
from stream.settings import Settings
from stream.store.edge import EdgeStore

DIM = vector_dimension(Settings())
ORIGINAL = [("traceparent", b"00-4bf92f3577b34da6-00f067aa0ba902b7-01"), ("tenant", b"shop-7")]


def test_a_dead_letter_keeps_the_original_headers_and_recstream_s_win_a_clash() -> None:
    """The original headers come first, unchanged; one named like a recstream header is left
    out, so each of recstream's names appears once, with recstream's value."""
    msg = LocalMessage(7, b"u-1", b"{nope", "user.events", 2, [*ORIGINAL, (HEADER_ERROR, b"x")])
    headers = dead_letter(msg, "invalid_json", "Expecting value").headers()
    assert headers[:2] == ORIGINAL
    names = [name for name, _ in headers]
    assert sorted(names) == sorted(
        ["traceparent", "tenant", HEADER_ERROR, HEADER_DETAIL, HEADER_SOURCE]
    )
    assert dict(headers)[HEADER_ERROR] == b"invalid_json"


def test_the_detail_is_cut_at_1000_characters() -> None:
    """A long detail (an invalid event's, through its exception) reaches the dead letter's
    header cut to 1,000 characters, not fewer."""
    exc = InvalidEvent("schema", "field " + "x" * 3_000)
    letter = dead_letter(LocalMessage(0, b"k", b"{}"), exc.reason, exc.detail)
    detail = dict(letter.headers())[HEADER_DETAIL]
    assert isinstance(detail, bytes)
    assert len(detail.decode("utf-8")) == 1_000


@pytest.mark.integration
def test_a_bad_message_s_headers_reach_its_dead_letter(
    make_settings: Callable[..., Settings],
) -> None:
    """A message with headers that the behaviour consumer cannot parse lands on the DLQ with
    those headers, beside recstream's reason, detail and source."""
    settings = make_settings()
    producer = Producer(producer_config(settings))
    producer.produce(settings.topic_user_events, key=b"u-1", value=b"{nope", headers=ORIGINAL)
    assert producer.flush(30) == 0
    store = EdgeStore(settings.qdrant_path)
    consumers = behaviour_consumers(settings, store, DIM)
    try:
        with RunningConsumers(consumers) as running:
            running.wait_caught_up()
        [letter] = read_topic(settings, settings.dlq_topic(settings.topic_user_events))
    finally:
        store.close()
    assert letter.value == b"{nope"
    assert letter.headers["traceparent"] == ORIGINAL[0][1]
    assert letter.headers["tenant"] == b"shop-7"
    assert letter.headers[HEADER_ERROR] == b"invalid_json"
    assert letter.headers[HEADER_SOURCE].startswith(settings.topic_user_events.encode())
