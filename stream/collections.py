"""The collections recstream keeps in the vector store, and their payload indexes.

- ``items``: one point per live item: its text vector, its description, ``written_at`` (the
  writer's clock, Unix seconds, at its last write by the catalog consumer: readers that keep a
  copy of the items ask for what changed since), and, where lists are searched in the store,
  the neighbour list last published for it (``nb_ids``, a list; ``nb_scores``, one
  comma-separated string; ``nb_floor``, the k-th score or -2).
- ``item_lists``: where lists are searched in memory, the lists last published, as a journal
  of one point per batch (the messages as published; :mod:`stream.catalog.journal`).
  Placeholder vectors.
- ``items_deleted``: a record (id and stamp) per deleted item, so that a late, older event
  cannot bring it back. Vectors are a 1-dimensional placeholder.
- ``item_stats``: per item, decayed popularity and co-occurrence, written only by the item-stats
  consumer (one writer per item: the internal topic is keyed by item id). Placeholder vectors.
- ``users``: per shopper, the profile vector and the bounded interaction history.
- Fields nothing filters on that hold many entries (a history, co-occurrence, a model row) are
  stored as JSON texts: the engine writes and reads them several times faster than objects.
- ``item_model``: per item, the row of the learned collaborative model (the items it predicts
  and their weights), written by ``recstream train recommender``. Placeholder vectors.
- ``items``, ``users`` and ``item_lists`` hold one model's vectors: ``recstream migrate`` builds
  another model's beside them (``items_g1``, ...) and switches to them (:mod:`stream.generations`).
- ``ranking``: the point ``tuned`` (the ranking settings ``recstream tune`` chose) and the point
  ``model`` (when the stored model was trained: written after its rows, it tells the consumers
  to read them again). Placeholder vectors.
"""

from __future__ import annotations

from stream.store import FieldKind, VectorStore

ITEMS = "items"
DELETED_ITEMS = "items_deleted"
ITEM_LISTS = "item_lists"
ITEM_STATS = "item_stats"
USERS = "users"
ITEM_MODEL = "item_model"
RANKING = "ranking"

WRITTEN_AT = "written_at"
"""Items' payload field: when the catalog consumer last wrote the item (Unix seconds)."""

_INDEXES = {
    ITEMS: {
        "item_id": FieldKind.KEYWORD,
        "nb_ids": FieldKind.KEYWORD,
        "nb_pending": FieldKind.KEYWORD,
        "nb_floor": FieldKind.FLOAT,
        # the query API's filters (and in-stock-only lists): without an index the engine reads
        # every point's payload, 20x slower at 10,000 items (bench/README.md)
        "in_stock": FieldKind.BOOL,
        "price": FieldKind.FLOAT,
        "categories": FieldKind.KEYWORD,
        WRITTEN_AT: FieldKind.FLOAT,
    },
    ITEM_STATS: {"pop_key": FieldKind.FLOAT},
}


def ensure_collections(store: VectorStore, dim: int, lexical: int = 0) -> None:
    """Create (or open) every collection; ``dim`` is the length of the encoder's vectors, of
    which the last ``lexical`` are a hybrid vector's lexical part (kept sparse)."""
    store.ensure_collection(ITEMS, dim, _INDEXES[ITEMS], lexical)
    store.ensure_collection(USERS, dim, None, lexical)
    store.ensure_collection(DELETED_ITEMS, 1)
    store.ensure_collection(ITEM_LISTS, 1)
    store.ensure_collection(ITEM_STATS, 1, _INDEXES[ITEM_STATS])
    store.ensure_collection(ITEM_MODEL, 1)
    store.ensure_collection(RANKING, 1)
