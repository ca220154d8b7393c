"""A reader of ``items.neighbours`` that notes when each item's own list first arrives, and
the Kafka timestamp that list was published with.

It is assigned every partition (no consumer group to join, nothing committed) and reads from
the beginning, so it sees what any subscriber of the output topic would, and when.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from stream.kafka.config import client_config
from stream.settings import Settings

ListId = tuple[str, int | None]
"""(item id, item_version) of a neighbour list."""


_VERSION = b'"item_version":'


def item_version(value: bytes) -> int | None:
    """The ``item_version`` of a neighbour-list message, read without parsing the whole of it:
    this reader shares the process (and its interpreter lock) with the pipeline it measures,
    and ``json.loads`` of every list took ~12 us, ~5% of a core at 100,000 items, where a
    subscriber would run in a process of its own. The field is the last but one the consumer
    writes (:func:`schemas.outputs.neighbour_list_json`); anything else is parsed whole."""
    at = value.rfind(_VERSION)
    end = value.find(b",", at)
    if at >= 0 and end > 0:
        text = value[at + len(_VERSION) : end]
        if text == b"null":
            return None
        if text.isdigit():
            return int(text)
    found = json.loads(value).get("item_version")
    return found if isinstance(found, int) else None


def topic_reader(settings: Settings, topic: str) -> Consumer:
    """A consumer assigned every partition of ``topic`` from the beginning, in no group that
    commits, and quick to hand over what arrives."""
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"recstream-bench-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            # arrival times are measured here: do not let the reader add much waiting
            "fetch.wait.max.ms": 10,
        }
    )
    parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    return consumer


class Arrivals:
    """First arrival time (``time.monotonic()``) of each (item id, item_version) list."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = topic_reader(settings, topic)
        self._first: dict[ListId, float] = {}
        self._stamps: dict[ListId, int] = {}
        self._order: list[ListId] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.messages = 0
        self._thread = threading.Thread(target=self._read, name="bench-reader", daemon=True)

    def start(self) -> Arrivals:
        self._thread.start()
        return self

    def _read(self) -> None:
        while not self._stop.is_set():
            # consume() with a timeout returns only when it has num_messages or the timeout
            # passed (arrivals would be stamped up to 50 ms late): wait for one, then take
            # what is already fetched
            first = self._consumer.poll(0.05)
            if first is None:
                continue
            now = time.monotonic()
            batch = [first, *self._consumer.consume(num_messages=1_000, timeout=0)]
            for msg in batch:
                value, key = msg.value(), msg.key()
                if msg.error() is not None or value is None or key is None:
                    continue
                self.messages += 1
                version = item_version(value)
                list_id = (key.decode(), version)
                with self._lock:
                    if list_id not in self._first:
                        self._first[list_id] = now
                        self._stamps[list_id] = msg.timestamp()[1]
                        self._order.append(list_id)

    def at(self, wanted: ListId) -> float | None:
        with self._lock:
            return self._first.get(wanted)

    def stamp(self, wanted: ListId) -> int | None:
        """The Kafka timestamp (Unix ms) of the first list of ``wanted`` that arrived."""
        with self._lock:
            return self._stamps.get(wanted)

    def seen(self, wanted: list[ListId]) -> list[float]:
        """Arrival times of those of ``wanted`` that have arrived."""
        with self._lock:
            return [self._first[w] for w in wanted if w in self._first]

    def wait_for(self, wanted: list[ListId], deadline: float, progress_s: float = 10.0) -> int:
        """Block until every list of ``wanted`` arrived or ``deadline``; how many arrived."""
        next_report = time.monotonic() + progress_s
        missing = set(wanted)
        total = len(missing)
        checked = 0  # arrivals (in order) already checked against ``missing``
        while True:
            # only new arrivals are looked at: a scan of all of ``wanted`` every 50 ms took
            # ~10% of a core from the pipeline under test at 10,000 items
            with self._lock:
                new, checked = self._order[checked:], len(self._order)
            missing.difference_update(new)
            arrived = total - len(missing)
            now = time.monotonic()
            if arrived == total or now >= deadline:
                return arrived
            if now >= next_report:
                print(f"    {arrived:,}/{total:,} lists arrived", flush=True)
                next_report = now + progress_s
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()
