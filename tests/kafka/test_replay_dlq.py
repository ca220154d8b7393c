"""``recstream replay-dlq`` on the real broker: dead letters made by a real consumer go back to
their source topic once a fix makes them valid, exactly once across runs."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Callable

import pytest
import structlog
from kit import RunningConsumer, event_bytes, final_lists, publish, upsert_event

from encoders import Encoder
from recstream_tools.sample_catalog import sample_items
from stream.cli import main
from stream.collections import ITEMS
from stream.kafka.inspect import read_topic, scan_topic
from stream.kafka.topics import behaviour_topics, catalog_topics, ensure_topics
from stream.replay import (
    ALREADY_REPLAYED,
    HEADER_REPLAYED_FROM,
    OTHER_REASON,
    OVER_LIMIT,
    REFUSED,
    REPLAYED,
    TRUNCATED,
    WOULD_REPLAY,
    ReplayTimedOut,
    replay_dead_letters,
    replayed_topic,
)
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration


def _ends(settings: Settings, topic: str) -> int:
    """Messages in ``topic`` (sum of the partitions' end offsets)."""
    return sum(scan_topic(settings, topic)[1].values())


def test_replay_after_a_fix_processes_dead_letters_once(
    make_settings: Callable[..., Settings],
    encoder: Encoder,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A too_large event dead-lettered by the real consumer: a dry run publishes nothing; after
    the fix (a larger max_message_bytes) a replay filtered by reason sends the original key and
    value, with a replayed-from header, to its source partition and the consumer processes it;
    a second replay sends nothing again; --limit caps a run; the CLI prints a table, exits 0."""
    broken = make_settings(max_message_bytes=2_048)
    items = sample_items(12, seed=8)
    big = {**items[0], "item_id": "sku-big", "description": "roomy " * 600}  # ~3.6 KB
    good = [event_bytes(upsert_event(i, 1, "item.created")) for i in items[1:]]
    too_large = event_bytes(upsert_event(big, 1, "item.created"))
    schema = (b"sku-bad", b'{"type": "item.created", "event_id": "e"}')
    not_json = (b"sku-worse", b"{nope")
    publish(broken, broken.topic_items, [*good[:5], too_large, schema, *good[5:], not_json])
    dlq = broken.dlq_topic(broken.topic_items)

    store = EdgeStore(broken.qdrant_path)
    try:
        with RunningConsumer(broken, encoder, store) as running:
            running.wait_caught_up()
        assert store.count(ITEMS) == len(good)
        dead = read_topic(broken, dlq)
        assert sorted(r.headers["recstream.error"] for r in dead) == [
            b"invalid_json",
            b"schema",
            b"too_large",
        ]
        published = _ends(broken, broken.topic_items)

        dry = replay_dead_letters(broken, dlq, dry_run=True)
        assert dry.replayed == 3 and dry.count(WOULD_REPLAY) == 3
        assert _ends(broken, broken.topic_items) == published, "a dry run published"
        assert read_topic(broken, replayed_topic(dlq)) == []

        fixed = broken.model_copy(update={"max_message_bytes": 262_144})
        report = replay_dead_letters(fixed, dlq, dry_run=False, reason="too_large")
        assert report.count(REPLAYED) == 1 and report.count(OTHER_REASON) == 2
        replays = read_topic(fixed, fixed.topic_items)
        replayed = [r for r in replays if HEADER_REPLAYED_FROM in r.headers]
        assert len(replayed) == 1
        source = next(r for r in dead if r.headers["recstream.error"] == b"too_large")
        assert (replayed[0].key, replayed[0].value) == too_large
        assert replayed[0].headers[HEADER_REPLAYED_FROM].decode() == (
            f"{dlq}/{source.partition}/{source.offset}"
        )
        assert replayed[0].partition == int(source.headers["recstream.source"].split(b"/")[-2])

        with RunningConsumer(fixed, encoder, store) as running:
            running.wait_caught_up()
        assert store.count(ITEMS) == len(good) + 1
        assert final_lists(fixed).get("sku-big"), "the replayed item has no neighbour list"

        again = replay_dead_letters(fixed, dlq, dry_run=False, reason="too_large")
        assert again.count(REPLAYED) == 0 and again.count(ALREADY_REPLAYED) == 1
        assert _ends(fixed, fixed.topic_items) == published + 1, "a second replay published"

        limited = replay_dead_letters(fixed, dlq, dry_run=False, limit=1)
        assert limited.count(REPLAYED) == 1 and limited.count(OVER_LIMIT) == 1
        assert limited.count(ALREADY_REPLAYED) == 1
    finally:
        store.close()

    settings_args = [f"--kafka-bootstrap={fixed.kafka_bootstrap}", f"--topic={dlq}"]
    try:
        assert main(["replay-dlq", "--dry-run", "--log-level=warning", *settings_args]) == 0
    finally:
        structlog.reset_defaults()  # main() configured JSON logging for the process
    out = capsys.readouterr().out
    assert f"dry run: {dlq}: would replay 1 of 3 dead letters" in out
    assert "already replayed" in out and "total" in out
    assert _ends(fixed, fixed.topic_items) == published + 2
    markers = {
        json.loads(r.value or b"{}")["replayed_to"] for r in read_topic(fixed, replayed_topic(dlq))
    }
    assert len(markers) == 2


def _dead_letters(
    settings: Settings, dlq: str, letters: list[list[tuple[str, str | bytes | None]]]
) -> None:
    """Publish dead letters (key ``k``, value ``{}``) with these headers to ``dlq``."""
    from confluent_kafka import Producer

    from stream.kafka.config import producer_config

    producer = Producer(producer_config(settings))
    for headers in letters:
        producer.produce(dlq, key=b"k", value=b"{}", headers=headers)
    assert producer.flush(30) == 0


def test_replay_goes_only_to_the_dlqs_own_topic_and_its_partitions(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    """``<topic>.dlq`` replays only into ``<topic>`` and only to partitions it has: a source
    header naming the DLQ itself, another topic, a partition the topic lacks, a partition number
    of 5,000 digits, a malformed header or none is refused, counted and shown with why; nothing
    is published anywhere for them or recorded as replayed; the one good dead letter is
    replayed; the CLI prints the refusals and exits 0."""
    settings = make_settings()
    ensure_topics(settings, {**catalog_topics(settings), **behaviour_topics(settings)})
    dlq = settings.dlq_topic(settings.topic_items)
    items, other = settings.topic_items, settings.topic_user_events
    n = settings.topic_partitions
    error = ("recstream.error", b"schema")
    _dead_letters(
        settings,
        dlq,
        [
            [error, ("recstream.source", f"{dlq}/0/3".encode())],
            [error],
            [error, ("recstream.source", b"nonsense")],
            [error, ("recstream.source", f"{other}/0/1".encode())],
            [error, ("recstream.source", f"{items}/{n + 5}/1".encode())],
            [error, ("recstream.source", f"{items}/{'9' * 5_000}/1".encode())],
            [error, ("recstream.source", f"{items}/0/7".encode())],
        ],
    )

    report = replay_dead_letters(settings, dlq, dry_run=False)
    assert report.count(REFUSED) == 6 and report.replayed == 1
    notes = [d.note for d in report.refusals]
    assert sum(f"is not {items}" in note for note in notes) == 2, notes
    assert any(f"{items} has no partition {n + 5} ({n} partitions)" in note for note in notes)
    assert sum("malformed" in note for note in notes) == 2, notes
    assert any("no recstream.source header" in note for note in notes), notes
    assert [(r.partition, r.value) for r in read_topic(settings, items)] == [(0, b"{}")]
    assert read_topic(settings, other) == [], "a replay went to another topic"
    assert _ends(settings, dlq) == 7, "something was published to the DLQ"
    assert len(read_topic(settings, replayed_topic(dlq))) == 1

    try:
        assert main(["replay-dlq", "--log-level=warning", *_cli_settings(settings, dlq)]) == 0
    finally:
        structlog.reset_defaults()  # main() configured JSON logging for the process
    out = capsys.readouterr().out
    assert f"{dlq}: replayed 0 of 7 dead letters" in out
    assert out.count("  refused ") == 6 and f"is not {items}" in out
    assert len(read_topic(settings, items)) == 1, "a second run replayed again"
    with pytest.raises(ValueError, match="not a dead-letter topic"):
        replay_dead_letters(settings, items, dry_run=True)


def test_replay_skips_dead_letters_whose_key_or_value_was_cut(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    """Dead letters cut to fit the DLQ (``recstream.truncated``: ``value``, ``key,value``) are
    skipped, counted and reported, in a dry run and in a real one, and never recorded as
    replayed, so every later run reports them again; one cut only in the original's own headers
    (which a replay never carries) is replayed like a whole one."""
    settings = make_settings()
    ensure_topics(settings, catalog_topics(settings))
    dlq = settings.dlq_topic(settings.topic_items)
    items = settings.topic_items
    source = ("recstream.source", f"{items}/0/1".encode())
    too_large = ("recstream.error", b"too_large")
    _dead_letters(
        settings,
        dlq,
        [
            [too_large, source, ("recstream.truncated", b"value")],
            [("recstream.error", b"schema"), source],
            [too_large, source, ("recstream.truncated", b"key,value")],
            [too_large, source, ("recstream.truncated", b"headers")],
        ],
    )

    dry = replay_dead_letters(settings, dlq, dry_run=True)
    assert dry.count(TRUNCATED) == 2 and dry.count(WOULD_REPLAY) == 2
    report = replay_dead_letters(settings, dlq, dry_run=False)
    assert report.count(TRUNCATED) == 2 and report.replayed == 2
    assert report.by_reason()["too_large"] == {TRUNCATED: 2, REPLAYED: 1}
    assert len(read_topic(settings, items)) == 2
    assert len(read_topic(settings, replayed_topic(dlq))) == 2, "a skipped one was recorded"

    try:
        assert main(["replay-dlq", "--log-level=warning", *_cli_settings(settings, dlq)]) == 0
    finally:
        structlog.reset_defaults()  # main() configured JSON logging for the process
    out = capsys.readouterr().out
    assert f"{dlq}: replayed 0 of 4 dead letters" in out
    assert "skipped 2 truncated" in out
    assert any(line.startswith("reason") and "truncated" in line for line in out.splitlines())
    assert len(read_topic(settings, items)) == 2, "a truncated dead letter was replayed"


def _cli_settings(settings: Settings, dlq: str) -> list[str]:
    return [f"--kafka-bootstrap={settings.kafka_bootstrap}", f"--topic={dlq}"]


def test_replay_streams_the_dlq(make_settings: Callable[..., Settings]) -> None:
    """A DLQ of 25 MB is read a few records at a time: a run holds far less of it in memory
    than the DLQ holds (all of it before)."""
    settings = make_settings()
    ensure_topics(settings, catalog_topics(settings))
    dlq = settings.dlq_topic(settings.topic_items)
    value = b"x" * 64_000
    source = ("recstream.source", f"{settings.topic_items}/0/1".encode())
    messages = [(b"k", value)] * 400
    from confluent_kafka import Producer

    from stream.kafka.config import producer_config

    producer = Producer(producer_config(settings))
    for key, v in messages:
        producer.produce(dlq, key=key, value=v, headers=[("recstream.error", b"too_large"), source])
        producer.poll(0)
    assert producer.flush(60) == 0

    tracemalloc.start()
    try:
        report = replay_dead_letters(settings, dlq, dry_run=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.count(WOULD_REPLAY) == 400
    held = len(value) * len(messages)
    assert peak < held / 2, f"peak {peak / 1e6:.1f} MB of a {held / 1e6:.1f} MB DLQ"


def test_replay_without_a_broker_is_a_one_line_error(
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A broker that does not answer: replay_dead_letters raises ReplayTimedOut (a ReplayFailed)
    with a one-line message naming the broker; replay-dlq prints one line saying so and exits
    non-zero, no traceback."""
    import stream.replay

    monkeypatch.setattr(stream.replay, "TIMEOUT_S", 2.0)
    monkeypatch.setenv("RECSTREAM_STARTUP_TIMEOUT_S", "2")  # the CLI's own wait, if any
    settings = make_settings(kafka_bootstrap="127.0.0.1:9")  # nothing listens on port 9
    dlq = settings.dlq_topic(settings.topic_items)
    with pytest.raises(ReplayTimedOut) as info:
        replay_dead_letters(settings, dlq, dry_run=True)
    assert "\n" not in str(info.value) and "127.0.0.1:9" in str(info.value)
    try:
        assert main(["replay-dlq", "--log-level=error", *_cli_settings(settings, dlq)]) != 0
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("recstream: ") and "127.0.0.1:9" in err
