"""A catalogue batch's effects on the store, in one place.

:meth:`BatchEffects.write` (in ``process``, before anything is published): the encoded items
written (a whole point, or with a lists consumer only the vector of one already stored), the
refreshed ones described again, the deleted ones removed with a tombstone each (so a late, older
event cannot bring them back), and the finder told of all of it (its in-memory copy and
journal). :meth:`BatchEffects.record` (in ``confirm``, once the lists were delivered): the lists'
records and the cleared ``lists_pending`` markers. Nothing else in the catalog consumer writes
the store.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from schemas.catalog import ItemDeleted
from stream.catalog.lists import NO_FLOOR, NeighbourState
from stream.catalog.neighbours import NeighbourFinder
from stream.catalog.plan import Plan, Received, item_payload
from stream.collections import DELETED_ITEMS, ITEMS, WRITTEN_AT
from stream.store import StoredPoint, VectorStore
from stream.store.base import Payload, Vector

PENDING = "lists_pending"
"""Item payload field: set with each write of the item, cleared once its batch's lists were
delivered. Still set at the next batch that sees the item means lists are owed (a crash
between the store write and the publish)."""


@dataclass(frozen=True)
class Published:
    """What a batch published, to record once the broker acknowledged it."""

    lists: dict[str, tuple[NeighbourState, bytes]]
    """The lists, by item, with their messages."""
    owed: list[str]
    """The batch's own items (written, refreshed or replayed): their marker is cleared."""


@dataclass(frozen=True)
class Written:
    """What :meth:`BatchEffects.write` changed."""

    changed: dict[str, Vector]
    """The encoded items' new vectors."""
    gone: list[str]
    """The items deleted."""
    hidden: dict[str, bool]
    """Of the items written, whether lists may not name them (in-stock-only lists)."""


class BatchEffects:
    def __init__(
        self, store: VectorStore, finder: NeighbourFinder, model: str, by_topic: bool
    ) -> None:
        self.store = store
        self.finder = finder
        self.model = model
        self.by_topic = by_topic
        """With a lists consumer a stored item's list fields are its: an encoded item already
        stored gets its vector replaced and its description merged, never its whole payload."""

    def write(
        self,
        plan: Plan,
        encoded: list[Received],
        vectors: Mapping[str, Vector],
        stored: Mapping[str, Payload],
    ) -> Written:
        kept = [r for r in encoded if self.by_topic and r.item_id in stored]
        new = [r for r in encoded if not (self.by_topic and r.item_id in stored)]
        self.store.upsert(
            ITEMS,
            [
                StoredPoint(
                    r.item_id,
                    _with_lists(self._payload(r), stored.get(r.item_id)),
                    vectors[r.item_id],
                )
                for r in new
            ],
        )
        self.store.update_vectors(ITEMS, {r.item_id: vectors[r.item_id] for r in kept})
        self.store.set_payload(ITEMS, {r.item_id: self._payload(r) for r in [*plan.refresh, *kept]})
        gone = [r.item_id for r in plan.delete]
        self.store.delete(ITEMS, gone)
        self.store.upsert(
            DELETED_ITEMS,
            [
                StoredPoint(r.item_id, r.stamp.to_payload(), np.ones(1, dtype=np.float32))
                for r in plan.delete
            ],
        )
        changed = {r.item_id: vectors[r.item_id] for r in encoded}
        versions = {r.item_id: r.stamp.version for r in [*encoded, *plan.refresh]}
        hidden = self._hidden([*encoded, *plan.refresh])
        self.finder.written(changed, gone, versions, hidden)
        return Written(changed, gone, hidden)

    def record(self, published: Published) -> None:
        self.finder.record(
            {k: state for k, (state, _) in published.lists.items()},
            {k: message for k, (_, message) in published.lists.items()},
        )
        # the batch's own items' lists are delivered: nothing owed for them any more
        delivered = {PENDING: False}  # one object: one store update for them all
        self.store.set_payload(ITEMS, dict.fromkeys(published.owed, delivered))

    def _hidden(self, written: list[Received]) -> dict[str, bool]:
        if not self.finder.in_stock_only:
            return {}
        return {
            r.item_id: not r.event.item.in_stock
            for r in written
            if not isinstance(r.event, ItemDeleted)
        }

    def _payload(self, r: Received) -> Payload:
        return {**item_payload(r, self.model), PENDING: True, WRITTEN_AT: time.time()}


def _with_lists(payload: Payload, previous: Payload | None) -> Payload:
    """An upsert replaces the payload whole; keep the record of the last published list (the
    store finder's). An item with none yet gets the lowest floor: every item enters its list,
    and the store finder's floor-filtered pages (which skip points without the field) still
    find it."""
    payload["nb_floor"] = NO_FLOOR
    for name in ("nb_ids", "nb_scores", "nb_floor"):
        if previous and name in previous:
            payload[name] = previous[name]
    return payload
