"""The lists consumer: list work (:mod:`stream.catalog.work`, keyed by list owner) in,
``items.neighbours`` out. Each owner's record and list have this one writer, whichever instance
owns the owner's partition, so several catalog instances on one Qdrant server cannot lose each
other's entries, publish a list computed before another's write, or list a deleted item.

The catalog consumers keep writing items while a batch here computes, and find the lists a change
touches from the records as they read them. So that none of their changes falls between what a
batch here reads and the records it writes, each batch first makes its intent visible:

1. the owners' work is merged; an owner the store no longer holds gets a tombstone;
2. lists to compute again get the lowest floor (every item written from now on is reported as
   entering them), and the items about to be merged into a list are named in its ``nb_pending``
   field (a change of one of them is reported as a change of a list naming it);
3. lists are computed again (exact top k from the store); their members are named pending too,
   then read again: a member changed, deleted or out of stock meanwhile means computing again;
4. entering items are scored with their stored vectors against the owner's stored vector and
   merged into the record where they beat it (a deleted or hidden one is skipped);
5. lists that differ from their record (and every list of a changed owner) are published; once
   delivered, the records are written and the pending names cleared.

A change the reads of 3 and 4 miss was written after 2, so its catalog consumer saw the lowest
floor or the pending name and sent work that a later batch does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import structlog

from schemas.errors import InvalidEvent
from schemas.outputs import neighbour_list_json
from stream.catalog.index import unit
from stream.catalog.lists import NO_FLOOR, NeighbourState, merged
from stream.catalog.neighbours import StoreFinder
from stream.catalog.work import ListWork, parse_list_work
from stream.collections import ITEMS
from stream.kafka.dlq import DeadLetter, Message, dead_letter, split_batch
from stream.loop import BatchConsumer, BatchResult, Output
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore

log = structlog.get_logger(__name__)

PENDING_IDS = "nb_pending"
"""Item payload field: items a batch of the lists consumer is about to put in the item's list."""
_ROUNDS = 3
"""Times a list is computed again when members changed while it was computed."""
_SAME = 1e-5

Entry = ListWork | DeadLetter
Lists = dict[str, NeighbourState]


@dataclass(frozen=True)
class Computed:
    lists: Lists
    """Every list computed (recorded once the outputs are delivered, published or not)."""


class ListProcessor:
    """Computes and publishes the lists of the owners in each batch of list work."""

    def __init__(self, settings: Settings, store: VectorStore) -> None:
        self.settings = settings
        self.store = store
        self.k = settings.neighbours_k
        self.in_stock_only = settings.lists_in_stock_only
        self.finder = StoreFinder(store, ITEMS, self.k, in_stock_only=self.in_stock_only)

    def receive(self, msg: Message) -> tuple[Entry, int]:
        try:
            return parse_list_work(msg.key(), msg.value()), 1
        except InvalidEvent as exc:
            return dead_letter(msg, exc.reason, exc.detail), 1

    def process(self, batch: list[Entry]) -> BatchResult[Computed]:
        started = time.perf_counter()
        dead, by_owner = split_batch(batch, lambda w: w.owner)
        owners = self.store.retrieve(ITEMS, list(by_owner), with_vectors=True)
        gone = sorted(set(by_owner) - set(owners))
        work = {k: w for k, w in by_owner.items() if k in owners}
        records = {k: NeighbourState.from_payload(owners[k].payload) for k in work}
        again = {
            k
            for k, ws in work.items()
            if records[k] is None or any(w.own or w.recompute for w in ws)
        }
        entering = {
            k: set().union(*(w.enter for w in ws)) - {k} for k, ws in work.items() if k not in again
        }
        entering = {k: e for k, e in entering.items() if e}
        # 2: make the intent visible before reading what the lists are computed from
        self.store.set_payload(
            ITEMS,
            {k: {"nb_floor": NO_FLOOR} for k in again}
            | {k: {PENDING_IDS: sorted(e)} for k, e in entering.items()},
        )
        lists = self._computed(again)
        lists |= self._merged(owners, records, entering)
        own = {k for k, ws in work.items() if any(w.own for w in ws)}
        outputs = self._outputs(lists, records, own, owners)
        outputs += [Output(self.settings.topic_neighbours, k.encode(), None) for k in gone]
        dlq = self.settings.dlq_topic(self.settings.topic_list_work())
        outputs += [Output(dlq, d.key, d.value, d.headers()) for d in dead]
        counts = {
            "work": len(batch),
            "computed": len(again),
            "merged": len(entering),
            "published": len(outputs) - len(dead),
            "tombstones": len(gone),
            "dead_letters": len(dead),
        }
        log.info("lists.batch", **counts, ms=round((time.perf_counter() - started) * 1000, 1))
        return BatchResult(outputs=outputs, counts=counts, confirm=Computed(lists))

    def _computed(self, keys: set[str]) -> Lists:
        """Exact top k of each, computed again until no member changed meanwhile (3, above)."""
        out: Lists = {}
        todo = set(keys)
        for round_ in range(_ROUNDS):
            if not todo:
                break
            lists = self.finder.top_k(todo)
            out |= lists
            self.store.set_payload(ITEMS, {k: {PENDING_IDS: list(s.ids)} for k, s in lists.items()})
            todo = self._moved(lists)
            if todo and round_ == _ROUNDS - 1:
                log.warning("lists.members_kept_changing", owners=len(todo))
        return out

    def _moved(self, lists: Lists) -> set[str]:
        """Owners whose list names an item that changed, went or was hidden since it was read."""
        named = sorted({i for s in lists.values() for i in s.ids} | set(lists))
        points = self.store.retrieve(ITEMS, named, with_vectors=True)
        moved = set()
        for key, state in lists.items():
            owner = points.get(key)
            if owner is None or owner.vector is None:
                continue  # deleted meanwhile: its own work follows
            for item, score in zip(state.ids, state.scores, strict=True):
                p = points.get(item)
                if p is None or p.vector is None or self._hidden(p):
                    moved.add(key)
                    break
                if abs(_cosine(owner, p) - score) > _SAME:
                    moved.add(key)
                    break
        return moved

    def _merged(
        self,
        owners: dict[str, StoredPoint],
        records: dict[str, NeighbourState | None],
        entering: dict[str, set[str]],
    ) -> Lists:
        """Each record with the entering items that beat it, scored from the store now (4)."""
        if not entering:
            return {}
        named = sorted(set().union(*entering.values()))
        points = self.store.retrieve(ITEMS, named, with_vectors=True)
        out: Lists = {}
        for key, items in entering.items():
            record = records[key]
            assert record is not None  # no record: computed again instead
            scores = {
                i: _cosine(owners[key], points[i])
                for i in items
                if i in points and points[i].vector is not None and not self._hidden(points[i])
            }
            out[key] = merged(record, {i: round(s, 6) for i, s in scores.items()}, self.k)
        return out

    def _hidden(self, point: StoredPoint) -> bool:
        return self.in_stock_only and point.payload.get("in_stock") is False

    def _outputs(
        self,
        lists: Lists,
        records: dict[str, NeighbourState | None],
        own: set[str],
        owners: dict[str, StoredPoint],
    ) -> list[Output]:
        now = datetime.now(UTC)
        least = self.settings.lists_min_score
        outputs = []
        for key in sorted(lists):
            state = lists[key]
            if key not in own and state.same_as(records[key]):
                continue
            payload = owners[key].payload
            version = payload.get("version")
            value = neighbour_list_json(
                key,
                [(i, s) for i, s in zip(state.ids, state.scores, strict=True) if s >= least],
                str(payload.get("model") or ""),
                version if isinstance(version, int) else None,
                now,
            )
            outputs.append(Output(self.settings.topic_neighbours, key.encode(), value))
        return outputs

    def confirm(self, result: BatchResult[Computed]) -> None:
        """Record every list computed (published or the same as before) and clear the pending
        names: only now may the catalog consumers read the new floors."""
        lists = result.confirm.lists if result.confirm else {}
        self.store.set_payload(
            ITEMS, {k: {**s.payload(self.k), PENDING_IDS: []} for k, s in lists.items()}
        )

    def close(self) -> None:
        """Nothing to release."""


def _cosine(a: StoredPoint, b: StoredPoint) -> float:
    assert a.vector is not None and b.vector is not None
    pair = unit(np.stack([a.vector, b.vector]).astype(np.float32))
    return float(pair[0] @ pair[1])


class ListConsumer(BatchConsumer[Entry, Computed]):
    """The lists consumer: list work in, neighbour lists and dead letters out."""

    def __init__(self, settings: Settings, processor: ListProcessor) -> None:
        from stream.kafka.topics import list_topics

        topic = settings.topic_list_work()
        super().__init__(settings, processor, topic, settings.lists_group(), list_topics(settings))
