"""The catalog processor on the real model and the real embedded store, without Kafka."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from encoders import BertEncoder, Encoder, TextRejected
from recstream_tools.sample_catalog import catalog_events, sample_items
from stream.catalog.processor import CatalogProcessor, Received
from stream.collections import ITEMS
from stream.kafka.dlq import DeadLetter, LocalMessage
from stream.settings import Settings
from stream.store.edge import EdgeStore


class RejectingEncoder:
    """The real encoder, made to reject texts holding a marker (fault injection)."""

    def __init__(self, inner: Encoder, marker: str) -> None:
        self.inner, self.marker = inner, marker
        self.name, self.dim, self.device = inner.name, inner.dim, inner.device
        self.runtime = inner.runtime

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        for i, t in enumerate(texts):
            if self.marker in t:
                raise TextRejected(i, "marked for rejection by the test")
        return self.inner.encode(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.inner.count_tokens(texts)


@pytest.fixture(scope="module")
def bert() -> Encoder:
    return BertEncoder()


def test_rejected_text_is_dead_lettered_and_the_rest_encoded(bert: Encoder, tmp_path: Path) -> None:
    """When the encoder rejects one text of a batch, that event becomes an encoder_rejected dead
    letter with its original bytes and headers, and every other item of the batch is stored and
    listed."""
    items = sample_items(12, seed=3)
    items[4] = {**items[4], "title": "REJECT-ME " + items[4]["title"]}
    events = catalog_events(items, datetime(2026, 11, 22, tzinfo=UTC))
    store = EdgeStore(tmp_path)
    try:
        processor = CatalogProcessor(
            Settings(repair_sweep_per_s=0), RejectingEncoder(bert, "REJECT-ME"), store
        )
        msgs = [
            LocalMessage(
                i,
                e["item"]["item_id"].encode(),
                json.dumps(e).encode(),
                headers=[("trace-id", f"t-{i}".encode())],
            )
            for i, e in enumerate(events)
        ]
        entries = [processor.receive(m)[0] for m in msgs]
        assert all(isinstance(e, Received) for e in entries)
        result = processor.process(entries)
        dead = [o for o in result.outputs if o.topic == "catalog.items.dlq"]
        assert len(dead) == 1
        assert dead[0].value == msgs[4].value() and dead[0].key == msgs[4].key()
        assert dict(dead[0].headers or [])["recstream.error"] == b"encoder_rejected"
        assert dict(dead[0].headers or [])["recstream.source"] == b"catalog.items/0/4"
        assert dict(dead[0].headers or [])["trace-id"] == b"t-4"
        assert store.count(ITEMS) == 11
        assert result.confirm is not None
        assert set(result.confirm.lists) == {i["item_id"] for i in items} - {items[4]["item_id"]}
    finally:
        store.close()


def test_tokens_counted_and_bad_input_becomes_dead_letter(bert: Encoder, tmp_path: Path) -> None:
    """receive() gives valid events their token count and turns invalid ones into dead letters."""
    store = EdgeStore(tmp_path)
    try:
        processor = CatalogProcessor(
            Settings(max_message_bytes=2_048, repair_sweep_per_s=0), bert, store
        )
        event = catalog_events(sample_items(1), datetime(2026, 11, 22, tzinfo=UTC))[0]
        good, tokens = processor.receive(LocalMessage(0, b"sku-000001", json.dumps(event).encode()))
        assert isinstance(good, Received) and tokens == bert.count_tokens([good.text or ""])[0] > 5
        bad, _ = processor.receive(LocalMessage(1, b"k", b"{nope"))
        assert isinstance(bad, DeadLetter) and bad.reason == "invalid_json"
        big, _ = processor.receive(LocalMessage(2, b"k", b"x" * 3_000))
        assert isinstance(big, DeadLetter) and big.reason == "too_large"
    finally:
        store.close()
