"""A Qdrant server through qdrant-client (also its local mode: ``path=...`` or ``":memory:"``)."""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from qdrant_client import QdrantClient, models

from stream.store.base import (
    DimensionMismatch,
    FieldKind,
    Hit,
    Payload,
    SearchQuery,
    StoredPoint,
    StoreError,
    Vector,
    Where,
    as_vector,
    engine_calls,
    payload_fields,
    point_id,
    runs_of_same,
)
from stream.store.hybrid import LEXICAL, Split, fused_search, joined, split, whole_vectors

_VECTOR = "text"
_SCHEMA = {
    FieldKind.KEYWORD: models.PayloadSchemaType.KEYWORD,
    FieldKind.FLOAT: models.PayloadSchemaType.FLOAT,
    FieldKind.INTEGER: models.PayloadSchemaType.INTEGER,
    FieldKind.BOOL: models.PayloadSchemaType.BOOL,
}
_SCROLL_PAGE = 1_000
# In a cluster: every write goes through the shard's leader, in one order for all replicas,
# and reads ask a majority of replicas, so a read sees every write acknowledged before it
# (writes wait for their replicas: ``wait=True``). One node or the local mode: no effect.
_WRITE = models.WriteOrdering.STRONG
_READ = models.ReadConsistencyType.MAJORITY


def _filter(where: Where) -> models.Filter | None:
    must: list[Any] = []
    must_not: list[Any] = []
    if where.exclude_keys:
        must_not.append(models.HasIdCondition(has_id=[point_id(k) for k in where.exclude_keys]))
    if where.below is not None:
        name, value = where.below
        must.append(models.FieldCondition(key=name, range=models.Range(lt=value)))
    if where.contains is not None:
        name, text = where.contains
        must.append(models.FieldCondition(key=name, match=models.MatchValue(value=text)))
    if where.within is not None:
        name, low, high = where.within
        must.append(models.FieldCondition(key=name, range=models.Range(gte=low, lte=high)))
    if where.flag is not None:
        name, value = where.flag
        must.append(models.FieldCondition(key=name, match=models.MatchValue(value=value)))
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


def _key(payload: Mapping[str, Any] | None) -> str:
    return str((payload or {})["key"])


def _whole(record: Any, lexical: int) -> Vector | None:
    """The point's whole vector (a hybrid collection's two parts joined); None when absent."""
    vec = record.vector
    if not isinstance(vec, dict):
        return None
    if not lexical:
        return as_vector(vec[_VECTOR])
    sparse = vec.get(LEXICAL)
    indices, values = (sparse.indices, sparse.values) if sparse is not None else ([], [])
    return joined(vec[_VECTOR], indices, values, lexical)


def _hit(point: Any) -> Hit:
    return Hit(key=_key(point.payload), score=float(point.score), payload=dict(point.payload or {}))


class ServerStore:
    """VectorStore on a Qdrant server (``url``) or qdrant-client's local mode (``location``)."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        location: str | None = None,
        timeout_s: int = 30,
    ) -> None:
        # local mode locks its directory to one process; a server is shared
        self.exclusive = not url
        if url:
            self.client = QdrantClient(url=url, api_key=api_key, timeout=timeout_s)
        elif location == ":memory:":
            self.client = QdrantClient(location=":memory:")
        else:
            self.client = QdrantClient(path=location or "./data/qdrant-local")
        # qdrant-client's local mode is not thread-safe; the remote client is, but one lock
        # keeps both adapters alike.
        self._lock = threading.RLock()
        self._lexical: dict[str, int] = {}
        """Per collection ensured: the length of the vectors' part kept sparse (0: none)."""

    def _engine(self) -> AbstractContextManager[None]:
        return engine_calls(self._lock, "Qdrant server")

    def ensure_collection(
        self,
        name: str,
        dim: int,
        indexes: Mapping[str, FieldKind] | None = None,
        lexical: int = 0,
    ) -> None:
        with self._engine():
            if self.client.collection_exists(name):
                info = self.client.get_collection(name)
                vectors = info.config.params.vectors
                size = vectors[_VECTOR].size if isinstance(vectors, dict) else None
                sparse = LEXICAL in (info.config.params.sparse_vectors or {})
                if not sparse:
                    lexical = 0  # made before (or without) sparse vectors: the whole vector dense
                if size != dim - lexical or (sparse and not lexical):
                    raise DimensionMismatch(
                        f"collection {name!r} holds vectors of size {size}"
                        + (" and a sparse part" if sparse else "")
                        + f", not {dim}: use another collection or the model and lexical mix "
                        "it was built with (RECSTREAM_MODEL, RECSTREAM_LEXICAL_WEIGHT, _DIM; a "
                        "store from before the hybrid default holds the model's vectors alone: "
                        "weight 0)"
                    )
                # indexes added since the collection was made (the embedded engine makes them
                # at every open)
                indexed = set(info.payload_schema or {})
                self._index(name, {f: k for f, k in (indexes or {}).items() if f not in indexed})
                self._lexical[name] = lexical
                return
            # hybrid vectors: the model's part by dot product, the rest sparse
            distance = models.Distance.DOT if lexical else models.Distance.COSINE
            self.client.create_collection(
                name,
                vectors_config={
                    _VECTOR: models.VectorParams(size=dim - lexical, distance=distance)
                },
                sparse_vectors_config={LEXICAL: models.SparseVectorParams()} if lexical else None,
            )
            self._index(name, indexes or {})
            self._lexical[name] = lexical

    def sparse_width(self, collection: str) -> int:
        return self._lexical_of(collection)

    def _lexical_of(self, collection: str) -> int:
        """The collection's sparse part's length (a collection this client did not ensure is
        looked up once: one made with sparse vectors cannot be read without its width)."""
        known = self._lexical.get(collection)
        if known is not None:
            return known
        with self._engine():
            info = self.client.get_collection(collection)
        if LEXICAL in (info.config.params.sparse_vectors or {}):
            raise StoreError(
                f"collection {collection!r} holds hybrid vectors: ensure_collection it with its "
                "lexical width first"
            )
        self._lexical[collection] = 0
        return 0

    def _vectors(self, collection: str, vector: Vector) -> dict[str, Any]:
        """A whole vector as the collection's named vectors."""
        lexical = self._lexical_of(collection)
        if not lexical:
            return {_VECTOR: as_vector(vector).tolist()}
        parts = split(vector, lexical)
        sparse = models.SparseVector(indices=parts.indices, values=parts.values)
        return {_VECTOR: parts.dense, LEXICAL: sparse}

    def _named(self, collection: str) -> list[str]:
        return [_VECTOR, LEXICAL] if self._lexical_of(collection) else [_VECTOR]

    def _index(self, name: str, indexes: Mapping[str, FieldKind]) -> None:
        with warnings.catch_warnings():
            # local mode warns that indexes do nothing there; a server uses them
            warnings.simplefilter("ignore", UserWarning)
            for field_name, kind in indexes.items():
                self.client.create_payload_index(name, field_name, field_schema=_SCHEMA[kind])

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        structs = []
        for p in points:
            if p.vector is None:
                raise ValueError(f"point {p.key!r} has no vector")
            structs.append(
                models.PointStruct(
                    id=point_id(p.key),
                    vector=self._vectors(collection, p.vector),
                    payload={**p.payload, "key": p.key},
                )
            )
        with self._engine():
            self.client.upsert(collection, points=structs, wait=True, ordering=_WRITE)

    def set_payload(self, collection: str, payloads: Mapping[str, Payload]) -> None:
        if not payloads:
            return
        existing = self.retrieve(collection, list(payloads))
        # like the embedded engine: no payload for missing points
        present = [(point_id(k), p) for k, p in payloads.items() if k in existing]
        ops = [
            models.SetPayloadOperation(
                set_payload=models.SetPayload(payload=dict(payload), points=list(points))
            )
            for points, payload in runs_of_same(present)
        ]
        if ops:
            with self._engine():
                self.client.batch_update_points(
                    collection, update_operations=ops, wait=True, ordering=_WRITE
                )

    def update_vectors(self, collection: str, vectors: Mapping[str, Vector]) -> None:
        if not vectors:
            return
        existing = self.retrieve(collection, list(vectors))
        points = [
            models.PointVectors(id=point_id(k), vector=self._vectors(collection, v))
            for k, v in vectors.items()
            if k in existing  # like the embedded engine: missing points are not created
        ]
        if points:
            with self._engine():
                self.client.update_vectors(collection, points=points, wait=True, ordering=_WRITE)

    def delete(self, collection: str, keys: Sequence[str]) -> None:
        if keys:
            with self._engine():
                self.client.delete(
                    collection,
                    points_selector=models.PointIdsList(points=[point_id(k) for k in keys]),
                    wait=True,
                    ordering=_WRITE,
                )

    def retrieve(
        self,
        collection: str,
        keys: Sequence[str],
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
    ) -> dict[str, StoredPoint]:
        if not keys:
            return {}
        with self._engine():
            records = self.client.retrieve(
                collection,
                ids=[point_id(k) for k in keys],
                with_payload=payload_fields(fields),
                with_vectors=self._named(collection) if with_vectors else False,
                consistency=_READ,
            )
        lexical = self._lexical_of(collection)
        out = {}
        for r in records:
            key = _key(r.payload)
            vec = _whole(r, lexical) if with_vectors else None
            out[key] = StoredPoint(key=key, payload=dict(r.payload or {}), vector=vec)
        return out

    def search(self, collection: str, queries: Sequence[SearchQuery]) -> list[list[Hit]]:
        if not queries:
            return []
        lexical = self._lexical_of(collection)
        if lexical:
            wholes = whole_vectors(self, collection)
            rankings = functools.partial(self._rankings, collection)
            return [fused_search(q, lexical, rankings, wholes) for q in queries]
        requests = [
            models.QueryRequest(
                query=as_vector(q.vector).tolist(),
                using=_VECTOR,
                limit=q.limit,
                filter=_filter(q.where),
                with_payload=True,
                params=models.SearchParams(exact=True) if q.exact else None,
            )
            for q in queries
        ]
        with self._engine():
            responses = self.client.query_batch_points(
                collection, requests=requests, consistency=_READ
            )
        return [[_hit(p) for p in r.points] for r in responses]

    def _rankings(
        self, collection: str, parts: Split, n: int, where: Where, exact: bool
    ) -> tuple[list[Hit], list[Hit]]:
        """A hybrid collection's best ``n`` by each part (:data:`stream.store.hybrid.Rankings`)."""
        requests = [
            models.QueryRequest(
                query=parts.dense,
                using=_VECTOR,
                limit=n,
                filter=_filter(where),
                with_payload=True,
                params=models.SearchParams(exact=True) if exact else None,
            )
        ]
        if parts.indices:
            sparse = models.SparseVector(indices=parts.indices, values=parts.values)
            requests.append(
                models.QueryRequest(
                    query=sparse, using=LEXICAL, limit=n, filter=_filter(where), with_payload=True
                )
            )
        with self._engine():
            responses = self.client.query_batch_points(
                collection, requests=requests, consistency=_READ
            )
        dense = [_hit(p) for p in responses[0].points]
        return dense, [_hit(p) for p in responses[1].points] if len(responses) > 1 else []

    def keys_where(self, collection: str, where: Where, limit: int | None = None) -> list[str]:
        keys: list[str] = []
        offset: Any = None
        while limit is None or len(keys) < limit:
            page = _SCROLL_PAGE if limit is None else min(_SCROLL_PAGE, limit - len(keys))
            with self._engine():
                records, offset = self.client.scroll(
                    collection,
                    scroll_filter=_filter(where),
                    offset=offset,
                    limit=page,
                    with_payload=["key"],
                    consistency=_READ,
                )
            keys.extend(_key(r.payload) for r in records)
            if offset is None:
                break
        return keys

    def top_by(self, collection: str, field: str, limit: int) -> list[StoredPoint]:
        order = models.OrderBy(key=field, direction=models.Direction.DESC)
        with self._engine():
            records, _ = self.client.scroll(
                collection, limit=limit, order_by=order, with_payload=True, consistency=_READ
            )
        return [StoredPoint(key=_key(r.payload), payload=dict(r.payload or {})) for r in records]

    def scroll(
        self,
        collection: str,
        with_vectors: bool = False,
        fields: Sequence[str] | None = None,
        where: Where | None = None,
    ) -> Iterator[StoredPoint]:
        offset: Any = None
        while True:
            with self._engine():
                records, offset = self.client.scroll(
                    collection,
                    scroll_filter=_filter(where) if where is not None else None,
                    offset=offset,
                    limit=_SCROLL_PAGE,
                    with_payload=payload_fields(fields),
                    with_vectors=self._named(collection) if with_vectors else False,
                    consistency=_READ,
                )
            lexical = self._lexical_of(collection)
            for r in records:
                vec = _whole(r, lexical) if with_vectors else None
                yield StoredPoint(key=_key(r.payload), payload=dict(r.payload or {}), vector=vec)
            if offset is None:
                return

    def count(self, collection: str) -> int:
        with self._engine():
            return int(self.client.count(collection, exact=True).count)

    def flush(self) -> None:
        """Writes use ``wait=True``: nothing is pending."""

    def drop_collection(self, name: str) -> None:
        with self._engine():
            self._lexical.pop(name, None)
            if self.client.collection_exists(name):
                self.client.delete_collection(name)

    def close(self) -> None:
        with self._engine():
            self.client.close()
