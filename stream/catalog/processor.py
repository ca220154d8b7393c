"""One catalogue batch, from received events to store writes and output records.

Kafka-free on purpose: :meth:`CatalogProcessor.process` writes the store and returns the records
to publish; the consumer loop publishes them and only then calls :meth:`confirm` (which records
what was published) and commits offsets.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import structlog

from encoders import Encoder, EncoderError
from encoders.hybrid import lexical_width
from encoders.text import content_hash, item_text
from schemas.catalog import ItemDeleted, parse_catalog_event
from schemas.errors import ENCODER_REJECTED, TOO_LARGE, InvalidEvent, require_key
from schemas.outputs import neighbour_list_json
from stream.catalog.ahead import EncodeAhead
from stream.catalog.effects import PENDING, BatchEffects, Published
from stream.catalog.index import leave_cores_to_encoder
from stream.catalog.lists import NeighbourState, merged
from stream.catalog.neighbours import Entries, StoreFinder, finder_for
from stream.catalog.plan import Plan, Received, Stamp, newest_per_item, plan_batch
from stream.catalog.state import CatalogState
from stream.catalog.sweep import RepairSweep
from stream.catalog.work import list_work, lists_by_topic
from stream.collections import DELETED_ITEMS, ITEMS, ensure_collections
from stream.kafka.dlq import DeadLetter, LocalMessage, Message, dead_letter, message_headers
from stream.kafka.topics import catalog_topics, list_topics
from stream.loop import BatchConsumer, BatchResult, Output
from stream.settings import Settings
from stream.store import VectorStore
from stream.store.base import Payload, Vector, Where

log = structlog.get_logger(__name__)

Entry = Received | DeadLetter


class CatalogProcessor:
    """Turns catalogue events into store writes and neighbour-list records."""

    def __init__(
        self,
        settings: Settings,
        encoder: Encoder,
        store: VectorStore,
        state: CatalogState | None = None,
    ) -> None:
        """``state``: what this process keeps about ``store`` between batches, shared with
        every other catalog processor on it in this process (:mod:`stream.catalog.state`);
        without one, this processor's own."""
        self.settings = settings
        self.encoder = encoder
        self.store = store
        self.k = settings.neighbours_k
        ensure_collections(store, encoder.dim, lexical_width(encoder.name))
        if encoder.device == "cpu":
            # an encoder without a runtime attribute may be running on torch: leave torch be
            leave_cores_to_encoder(torch_threads=encoder.runtime != "torch")
        self.state = state or CatalogState()
        self.finder = finder_for(store, settings, ITEMS, encoder.dim, self.state)
        self.by_topic = lists_by_topic(settings, store)
        """Lists are the lists consumer's (:mod:`stream.catalog.owners`): this one publishes
        the work its changes ask of them."""
        if self.by_topic and not isinstance(self.finder, StoreFinder):
            raise ValueError(
                "RECSTREAM_LIST_STAGE=topic needs RECSTREAM_NEIGHBOUR_SEARCH=store (or auto)"
            )
        self.ahead = EncodeAhead(encoder)
        self.sweep = RepairSweep(store, ITEMS, settings.repair_sweep_per_s)
        self.effects = BatchEffects(store, self.finder, encoder.name, self.by_topic)
        # lists owed by a process that died between a store write and its publish (or by a
        # generation switched to), for items the batches left behind may not hold: each batch,
        # with events or without (stream.loop.Owing), honours a share of them
        self._owed_at_start = dict.fromkeys(store.keys_where(ITEMS, Where(flag=(PENDING, True))))
        """In the store's order; each batch takes a share (the first BATCH_MAX_ITEMS): after a
        generation switch it is the whole catalogue."""
        self._taken: set[str] = set()

    def owes_work(self) -> bool:
        """Lists are owed from before this process started (:class:`stream.loop.Owing`)."""
        return bool(self._owed_at_start)

    def _owed_share(self) -> set[str]:
        return set(itertools.islice(self._owed_at_start, self.settings.batch_max_items))

    def receive(self, msg: Message) -> tuple[Entry, int]:
        """Validate one message: a Received event with its token count, or a dead letter."""
        value = msg.value()
        if value is not None and len(value) > self.settings.max_message_bytes:
            limit = self.settings.max_message_bytes
            detail = f"{len(value)} bytes > RECSTREAM_MAX_MESSAGE_BYTES={limit}"
            return dead_letter(msg, TOO_LARGE, detail), 0
        try:
            event = parse_catalog_event(msg.key(), value)
            require_key(msg.key(), "item_id")
        except InvalidEvent as exc:
            return dead_letter(msg, exc.reason, exc.detail), 0
        text = digest = None
        tokens = 0
        if not isinstance(event, ItemDeleted):
            text = item_text(event.item)
            digest = content_hash(text)
            try:
                tokens = self.encoder.count_tokens([text])[0]
            except EncoderError as exc:
                return dead_letter(msg, "encoder_rejected", str(exc)), 0
        received = Received(
            event,
            msg.topic() or "",
            msg.partition() or 0,
            msg.offset() or 0,
            msg.key(),
            value,
            text,
            digest,
            tokens,
            message_headers(msg),
        )
        return received, tokens

    def prepare(self, batch: list[Entry]) -> None:
        """Start encoding, in the background, the texts ``batch`` will most likely need: the
        batch before it is still being written and published (see :mod:`stream.catalog.ahead`).
        """
        plan = self._plan(batch)
        self.ahead.start(id(batch), [r.text or "" for r in plan.encode])

    def wait_prepared(self, batch: list[Entry], timeout_s: float) -> bool:
        return self.ahead.wait(id(batch), timeout_s)

    def close(self) -> None:
        """Stop the worker thread that encodes ahead."""
        self.ahead.close()

    def process(self, batch: list[Entry]) -> BatchResult[Published]:
        try:
            return self._process(batch)
        except Exception:
            # the store may hold part of this batch's writes: the finder reads its items again
            self.finder.reset(r.item_id for r in batch if isinstance(r, Received))
            raise

    def _process(self, batch: list[Entry]) -> BatchResult[Published]:
        started = time.perf_counter()
        result: BatchResult[Published] = BatchResult()
        ready = self.ahead.take(id(batch))
        dead = [e for e in batch if isinstance(e, DeadLetter)]
        stored: dict[str, Payload] = {}
        taken = time.perf_counter()
        plan = self._plan(batch, stored)
        planned = time.perf_counter()

        vectors, rejected = self._encode(plan.encode, ready)
        encoded_at = time.perf_counter()
        dead.extend(rejected)
        encoded = [r for r in plan.encode if r.item_id in vectors]

        out = self.effects.write(plan, encoded, vectors, stored)  # the store's only writes here
        changed, gone, hidden = dict(out.changed), out.gone, dict(out.hidden)
        written = time.perf_counter()

        # Lists still owed: an item whose stored payload says ``lists_pending`` was written by a
        # batch that died before its lists were delivered (whatever this batch holds for it now:
        # a replay, a price-only update, an older event), and a replay (the stamp already
        # stored) may come from such a batch too. Search around it again, with the stored
        # vector: the lists it entered or left were never sent.
        owed = {k for k, p in stored.items() if p.get(PENDING) and k not in gone}
        self._taken = self._owed_share()
        owed |= self._taken - set(gone) - set(stored)
        replays = owed | {
            r.item_id for r in plan.refresh if r.stamp == Stamp.from_payload(stored[r.item_id])
        }
        # In-stock-only lists: an item out of stock now leaves the lists naming it; one back in
        # stock enters lists again (searched around with its stored vector, as a replay).
        was_hidden = {k for k, p in stored.items() if k in hidden and p.get("in_stock") is False}
        left = {k for k, h in hidden.items() if h and k in stored and k not in was_hidden}
        replays |= {k for k, h in hidden.items() if not h and k in was_hidden}
        replays -= set(changed)
        own = {r.item_id for r in encoded} | {r.item_id for r in plan.refresh} | owed
        for key, point in self.store.retrieve(ITEMS, sorted(replays), with_vectors=True).items():
            if point.vector is not None:
                changed[key] = point.vector
                if key not in hidden and self.finder.in_stock_only:
                    hidden[key] = point.payload.get("in_stock") is False
        own &= {*changed, *(r.item_id for r in plan.refresh)}  # owed ones still stored
        listed = self.finder.listing([*changed, *gone, *left]) - set(gone)
        swept = set(self.sweep.due()) - set(gone)  # computed afresh, published if they differ
        if self.by_topic:
            swept = self._differing(swept)  # the lists consumer gets work only for those
        listed |= swept
        entries = self.finder.entered_by({k: v for k, v in changed.items() if not hidden.get(k)})
        if self.by_topic:
            lists: dict[str, tuple[NeighbourState, bytes]] = {}
            result.outputs = [
                Output(self.settings.topic_list_work(), w.owner.encode(), w.to_json_bytes())
                for w in list_work(own, listed | set(gone), entries)
            ]
        else:
            result.outputs, lists = self._lists(own, listed, entries)
            for item_id in gone:
                result.outputs.append(
                    Output(self.settings.topic_neighbours, item_id.encode(), None)
                )
        result.confirm = Published(lists, sorted(own))
        dlq = self.settings.dlq_topic(self.settings.topic_items)
        result.outputs.extend(Output(dlq, d.key, d.value, d.headers()) for d in dead)
        result.counts = {
            "events": len(batch),
            "encoded": len(encoded),
            "refreshed": len(plan.refresh),
            "deleted": len(gone),
            "stale": len(plan.stale),
            "dead_letters": len(dead),
            "lists": len(lists),
            "swept": len(swept),
        }
        result.counts["encoder_texts"] = len(plan.encode)
        result.counts["encoder_tokens"] = sum(r.tokens for r in plan.encode)
        done = time.perf_counter()
        result.seconds = {
            # the model's runs (waiting for the one started ahead included), the store's reads
            # and writes, then the lists: searches and messages
            "encode": (taken - started) + (encoded_at - planned),
            "store": (planned - taken) + (written - encoded_at),
            "lists": done - written,
        }
        log.info(
            "catalog.batch",
            **result.counts,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return result

    def confirm(self, result: BatchResult[Published]) -> None:
        """Record the lists as published (call after the outputs were delivered)."""
        try:
            self.effects.record(result.confirm or Published({}, []))
            for key in self._taken:  # delivered (or gone): only now, a retried batch owes them
                self._owed_at_start.pop(key, None)
            self._taken = set()
        except Exception:
            # the items were written and the finder told in ``process``; a record that failed
            # is written again by the redo, or read from the journal at the next load
            self.finder.reset(())
            raise

    def _plan(self, batch: list[Entry], stored: dict[str, Payload] | None = None) -> Plan:
        """The batch's plan against the store as it is now; ``stored`` gets the items' payloads."""
        newest = newest_per_item([e for e in batch if isinstance(e, Received)])
        ids = list(newest)
        items = {k: p.payload for k, p in self.store.retrieve(ITEMS, ids).items()}
        deleted = {k: p.payload for k, p in self.store.retrieve(DELETED_ITEMS, ids).items()}
        if stored is not None:
            stored.update(items)
        return plan_batch(newest, items, deleted, self.encoder.name)

    def _encode(
        self, items: list[Received], ready: Mapping[str, Vector]
    ) -> tuple[dict[str, Vector], list[DeadLetter]]:
        """Vectors by item id (those encoded ahead taken from ``ready``) and dead letters for
        texts the encoder rejects."""
        vectors = {r.item_id: ready[r.text or ""] for r in items if (r.text or "") in ready}
        items = [r for r in items if r.item_id not in vectors]
        if not items:
            return vectors, []
        texts = [r.text or "" for r in items]
        try:
            with self.ahead.lock:
                matrix = self.encoder.encode(texts)
            vectors.update({r.item_id: matrix[i] for i, r in enumerate(items)})
            return vectors, []
        except EncoderError as exc:
            log.warning("catalog.encode_failed_batch", error=str(exc), items=len(items))
        # Find the culprits one by one: the rest of the batch must not be lost with them.
        rejected: list[DeadLetter] = []
        for r in items:
            try:
                with self.ahead.lock:
                    vectors[r.item_id] = self.encoder.encode([r.text or ""])[0]
            except EncoderError as exc:
                msg = LocalMessage(r.offset, r.key, r.value, r.topic, r.partition, list(r.headers))
                rejected.append(dead_letter(msg, ENCODER_REJECTED, str(exc)))
        return vectors, rejected

    def _differing(self, keys: set[str]) -> set[str]:
        """Of ``keys``, the stored items whose recorded list is not their fresh top k."""
        if not keys:
            return set()
        records = self.finder.records(keys)
        fresh = self.finder.top_k(set(records))
        return {k for k, r in records.items() if k in fresh and not fresh[k].same_as(r.state)}

    def _lists(
        self, own: set[str], listed: set[str], entries: Entries
    ) -> tuple[list[Output], dict[str, tuple[NeighbourState, bytes]]]:
        """The lists to publish (and each with its message, to record once published): changed
        items' own lists and lists naming a changed or deleted item are recomputed; a list only
        entered by changed items gets them merged in."""
        affected = own | listed | set(entries)
        records = self.finder.records(affected)
        recomputed = own | listed
        merge = {k for k in entries if k in records and k not in recomputed}
        merge = {k for k in merge if records[k].state is not None}
        lists = self.finder.top_k(set(records) - merge)
        for key in merge:
            state = records[key].state
            assert state is not None
            lists[key] = merged(state, entries[key], self.k)
        now = datetime.now(UTC)
        least = self.settings.lists_min_score  # the state keeps all k: its floor stays exact
        outputs: list[Output] = []
        published: dict[str, tuple[NeighbourState, bytes]] = {}
        for key in sorted(lists):
            state = lists[key]
            record = records[key]
            if key not in own and state.same_as(record.state):
                continue
            value = neighbour_list_json(
                key,
                [(i, s) for i, s in zip(state.ids, state.scores, strict=True) if s >= least],
                self.encoder.name,
                record.version,
                now,
            )
            outputs.append(Output(self.settings.topic_neighbours, key.encode(), value))
            published[key] = (state, value)
        return outputs, published


class CatalogConsumer(BatchConsumer[Entry, Published]):
    """The catalog consumer: ``catalog.items`` in, neighbour lists and dead letters out."""

    def __init__(self, settings: Settings, processor: CatalogProcessor) -> None:
        topics = catalog_topics(settings)
        if processor.by_topic:
            topics |= list_topics(settings)
        super().__init__(
            settings,
            processor,
            settings.topic_items,
            settings.catalog_group(),
            topics,
            # processors sharing a state (group members in one process) run one batch at a time
            batch_lock=processor.state.lock,
        )
