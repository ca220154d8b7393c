"""A catalogue batch that fails part-way through its store writes costs a batch, not a reload.

Real :class:`CatalogProcessor` (receive -> process -> confirm) with the memory finder over a
real :class:`EdgeStore`, seen through a wrapper that counts the item vectors read back and fails
the batch's deletion once, after its upsert landed (the store then holds part of the batch; the
in-memory copy was never told). The encoder is a small deterministic fake (a text's SHA-256
seeds a 16-dimensional unit vector).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hash_encoder import HashEncoder
from kit import assert_lists_match_brute_force, delete_event, feed, published, upsert_event

from stream.catalog.processor import CatalogProcessor
from stream.collections import ITEMS
from stream.settings import Settings
from stream.store import StoredPoint, StoreUnavailable, Where
from stream.store.edge import EdgeStore

K = 5
CATALOGUE = 300
SETTINGS = Settings(neighbours_k=K, neighbour_search="memory", repair_sweep_per_s=0)


class Watched:
    """The real store; counts the item vectors read and fails one deletion of items on demand."""

    def __init__(self, inner: EdgeStore) -> None:
        self.inner = inner
        self.vectors_read = 0
        self.fail_next_delete = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def scroll(
        self,
        collection: str,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
        where: Where | None = None,
    ) -> Iterator[StoredPoint]:
        for point in self.inner.scroll(collection, with_vectors, fields, where):
            self.vectors_read += with_vectors and collection == ITEMS
            yield point

    def retrieve(
        self,
        collection: str,
        keys: Sequence[str],
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> dict[str, StoredPoint]:
        found = self.inner.retrieve(collection, keys, with_vectors, fields)
        self.vectors_read += len(found) if with_vectors and collection == ITEMS else 0
        return found

    def delete(self, collection: str, keys: Sequence[str]) -> None:
        if self.fail_next_delete and collection == ITEMS:
            self.fail_next_delete = False
            raise StoreUnavailable("injected: the store went away after the batch's upsert")
        self.inner.delete(collection, keys)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Watched]:
    s = EdgeStore(str(tmp_path))
    yield Watched(s)
    s.close()


def item(i: int, title: str = "shirt") -> dict[str, Any]:
    return {"item_id": f"sku-{i:04d}", "title": f"{title} {i}", "price": 9.5}


def test_a_batch_failing_after_its_upsert_rereads_its_items_not_the_catalogue(
    store: Watched,
) -> None:
    """300 items listed. A batch of 10 new items, 10 new texts and 10 deletions fails at the
    deletion, its upsert already stored; the redo reads back from the store the vectors of
    about the batch's items (before: the whole catalogue again, inside the batch, which takes
    minutes at a million items), and every list is the brute-force top k of the store, no
    deleted item named anywhere."""
    processor = CatalogProcessor(SETTINGS, HashEncoder(), store)  # type: ignore[arg-type]
    lists: dict[str, Any] = {}
    catalogue = [upsert_event(item(i), 1, "item.created") for i in range(CATALOGUE)]
    published(feed(processor, catalogue), lists)

    events = [upsert_event(item(CATALOGUE + j), 1, "item.created") for j in range(10)]
    events += [upsert_event(item(j, "jumper"), 2) for j in range(10)]
    events += [delete_event(f"sku-{j:04d}", 3) for j in range(100, 110)]
    store.fail_next_delete = True
    with pytest.raises(StoreUnavailable):
        feed(processor, events)
    assert store.inner.count(ITEMS) == CATALOGUE + 10, "the upsert landed, the deletion did not"

    store.vectors_read = 0
    published(feed(processor, events), lists)  # the redo, as the loop retries it
    assert store.vectors_read <= 2 * len(events), store.vectors_read

    deleted = {f"sku-{j:04d}" for j in range(100, 110)}
    assert all(lists.get(key) is None for key in deleted), "a deleted item has a live list"
    live = {k: v for k, v in lists.items() if k not in deleted}
    assert_lists_match_brute_force(live, store.inner, K)
