"""The embedded vector store: Qdrant Edge (``qdrant-edge-py``), a shard directory per collection."""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import qdrant_edge as qe

from stream.store.base import (
    DimensionMismatch,
    FieldKind,
    Hit,
    Payload,
    SearchQuery,
    StoredPoint,
    StoreLocked,
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
    FieldKind.KEYWORD: qe.PayloadSchemaType.Keyword,
    FieldKind.FLOAT: qe.PayloadSchemaType.Float,
    FieldKind.INTEGER: qe.PayloadSchemaType.Integer,
    FieldKind.BOOL: qe.PayloadSchemaType.Bool,
}
_SCROLL_PAGE = 1_000
LOCK_FILE = ".recstream.lock"
"""In the store's directory: locked (``flock``) by the process that has the store open."""


def _filter(where: Where) -> qe.Filter | None:
    must: list[Any] = []
    must_not: list[Any] = []
    if where.exclude_keys:
        must_not.append(qe.HasIdCondition({point_id(k) for k in where.exclude_keys}))
    if where.below is not None:
        name, value = where.below
        must.append(qe.FieldCondition(name, range=qe.RangeFloat(lt=value)))
    if where.contains is not None:
        name, text = where.contains
        must.append(qe.FieldCondition(name, match=qe.MatchValue(text)))
    if where.within is not None:
        name, low, high = where.within
        must.append(qe.FieldCondition(name, range=qe.RangeFloat(gte=low, lte=high)))
    if where.flag is not None:
        name, value = where.flag
        # the binding reads a Python bool as an integer (which never matches a stored bool);
        # a numpy bool reaches the engine as a bool
        flag = cast("bool", np.bool_(value))
        must.append(qe.FieldCondition(name, match=qe.MatchValue(flag)))
    if not must and not must_not:
        return None
    return qe.Filter(must=must or None, must_not=must_not or None)


def _config(dim: int, lexical: int) -> qe.EdgeConfig:
    """A shard's vectors: one dense cosine vector of ``dim``; for hybrid vectors (``lexical`` >
    0) the first ``dim - lexical`` numbers by dot product and the rest sparse
    (:mod:`stream.store.hybrid`)."""
    distance = qe.Distance.Dot if lexical else qe.Distance.Cosine
    return qe.EdgeConfig(
        vectors={_VECTOR: qe.EdgeVectorParams(size=dim - lexical, distance=distance)},
        sparse_vectors={LEXICAL: qe.EdgeSparseVectorParams()} if lexical else None,
    )


def _mismatch(path: Path, dim: int) -> DimensionMismatch:
    return DimensionMismatch(
        f"{path} holds vectors of another size than {dim}: point RECSTREAM_QDRANT_PATH "
        "elsewhere or use the model and lexical mix it was built with (RECSTREAM_MODEL, "
        "RECSTREAM_LEXICAL_WEIGHT, _DIM; a store from before the hybrid default holds the "
        "model's vectors alone: weight 0)"
    )


def lock_directory(root: Path) -> IO[str]:
    """An open lock file holding ``root`` for this process until it is closed (or the process
    ends, however it ends: the kernel drops the lock); :class:`StoreLocked` when another process
    holds it. Without it two processes would both write the shards, whose own locks are taken
    one collection at a time, when first used."""
    handle = (root / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StoreLocked(
            f"the embedded store {root} is open in another process (pid {holder}): stop it, or "
            "set RECSTREAM_QDRANT_PATH to another directory (for several processes over one "
            "catalogue, use a Qdrant server: RECSTREAM_QDRANT_URL)"
        ) from None
    handle.truncate(0)
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _key(payload: Mapping[str, Any] | None) -> str:
    return str((payload or {})["key"])


def _hit(scored: Any) -> Hit:
    point = _stored(scored)
    return Hit(key=point.key, score=float(scored.score), payload=point.payload)


def _stored(record: Any, vector: Vector | None = None) -> StoredPoint:
    """A record as a point. The engine builds its payload anew at every read of ``payload``
    (a large one costs as much as the retrieve itself): read once."""
    payload = dict(record.payload or {})
    return StoredPoint(key=_key(payload), payload=payload, vector=vector)


def _whole(vector: qe.Vector | None, lexical: int) -> Vector | None:
    """The point's whole vector out of a record's named vectors (a hybrid collection's two parts
    joined); None when not fetched."""
    if not vector:
        return None
    if not isinstance(vector, dict):
        raise TypeError(f"expected named vectors from the engine, got {type(vector).__name__}")
    dense = cast("list[float]", vector[_VECTOR])
    if not lexical:
        return as_vector(dense)
    sparse = vector.get(LEXICAL)
    if not isinstance(sparse, qe.SparseVector):  # none stored: no lexical part
        return joined(dense, [], [], lexical)
    return joined(dense, sparse.indices, sparse.values, lexical)


def _layout(path: Path) -> tuple[int, bool] | None:
    """An existing shard's dense vector size and whether it has the lexical sparse vector."""
    try:
        config = json.loads((path / "edge_config.json").read_text())
        return int(config["vectors"][_VECTOR]["size"]), LEXICAL in (
            config.get("sparse_vectors") or {}
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class EdgeStore:
    """VectorStore on Qdrant Edge shards under ``root`` (``root/<collection>/``).

    The directory is open in one process only (:func:`lock_directory`): a second process gets
    :class:`StoreLocked`. Calls are serialised with a lock because one consumer's threads may
    share the store.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._held = lock_directory(self.root)
        self._shards: dict[str, qe.EdgeShard] = {}
        self._lexical: dict[str, int] = {}
        """Per open collection: the length of the vectors' part kept sparse (0: none)."""
        self.exclusive = True  # the directory lock keeps every other process out
        self._lock = threading.RLock()

    def sparse_width(self, collection: str) -> int:
        self._shard(collection)  # ensured: else a clear error
        return self._lexical.get(collection, 0)

    def _engine(self) -> AbstractContextManager[None]:
        return engine_calls(self._lock, "Qdrant Edge")

    def _shard(self, collection: str) -> qe.EdgeShard:
        try:
            return self._shards[collection]
        except KeyError:
            raise KeyError(
                f"collection {collection!r} not opened: call ensure_collection"
            ) from None

    def ensure_collection(
        self,
        name: str,
        dim: int,
        indexes: Mapping[str, FieldKind] | None = None,
        lexical: int = 0,
    ) -> None:
        with self._engine():
            if name in self._shards:
                return
            path = self.root / name
            found = _layout(path)
            if found is not None and not found[1]:
                lexical = 0  # made before (or without) sparse vectors: the whole vector dense
            if found is not None and found[1] and not lexical:
                raise DimensionMismatch(
                    f"{path} holds hybrid vectors (a dense and a sparse part), not vectors of "
                    f"the model alone: use the lexical mix it was built with "
                    "(RECSTREAM_LEXICAL_WEIGHT, _DIM) or point RECSTREAM_QDRANT_PATH elsewhere"
                )
            config = _config(dim, lexical)
            if found is not None and found[0] != dim - lexical:
                raise _mismatch(path, dim)
            if (path / "edge_config.json").exists():
                try:
                    shard = qe.EdgeShard.load(str(path), config)
                except Exception as exc:
                    if "dimension" in str(exc).lower() or "size" in str(exc).lower():
                        raise _mismatch(path, dim) from exc
                    raise
            else:
                shard = qe.EdgeShard.create(str(path), config)
            for field_name, kind in (indexes or {}).items():
                shard.update(qe.UpdateOperation.create_field_index(field_name, _SCHEMA[kind]))
            self._shards[name] = shard
            self._lexical[name] = lexical

    def _vectors(self, collection: str, vector: Vector) -> dict[str, Any]:
        """A whole vector as the collection's named vectors."""
        lexical = self._lexical.get(collection, 0)
        if not lexical:
            return {_VECTOR: as_vector(vector).tolist()}
        parts = split(vector, lexical)
        return {_VECTOR: parts.dense, LEXICAL: qe.SparseVector(parts.indices, parts.values)}

    def upsert(self, collection: str, points: Sequence[StoredPoint]) -> None:
        if not points:
            return
        edge_points = []
        for p in points:
            if p.vector is None:
                raise ValueError(f"point {p.key!r} has no vector")
            edge_points.append(
                qe.Point(
                    id=point_id(p.key),
                    vector=self._vectors(collection, p.vector),
                    payload={**p.payload, "key": p.key},
                )
            )
        with self._engine():
            self._shard(collection).update(qe.UpdateOperation.upsert_points(edge_points))

    def set_payload(self, collection: str, payloads: Mapping[str, Payload]) -> None:
        if not payloads:
            return
        ids = {point_id(key): key for key in payloads}
        with self._engine():
            shard = self._shard(collection)
            # The engine raises for a missing point; a point deleted meanwhile needs nothing.
            found = {
                str(r.id) for r in shard.retrieve(list(ids), with_payload=False, with_vector=False)
            }
            present: list[tuple[int | uuid.UUID | str, Payload]] = [
                (point, payloads[key]) for point, key in ids.items() if point in found
            ]  # in the caller's order, as the runs of one payload were given
            for group, payload in runs_of_same(present):
                shard.update(qe.UpdateOperation.set_payload(group, dict(payload)))

    def update_vectors(self, collection: str, vectors: Mapping[str, Vector]) -> None:
        if not vectors:
            return
        ids = {point_id(key): key for key in vectors}
        with self._engine():
            shard = self._shard(collection)
            found = shard.retrieve(list(ids), with_payload=False, with_vector=False)
            update = [
                qe.PointVectors(str(r.id), self._vectors(collection, vectors[ids[str(r.id)]]))
                for r in found
            ]
            if update:
                shard.update(qe.UpdateOperation.update_vectors(update))

    def delete(self, collection: str, keys: Sequence[str]) -> None:
        if keys:
            with self._engine():
                self._shard(collection).update(
                    qe.UpdateOperation.delete_points([point_id(k) for k in keys])
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
            records = self._shard(collection).retrieve(
                [point_id(k) for k in keys],
                with_payload=payload_fields(fields),
                with_vector=with_vectors,
            )
        lexical = self._lexical.get(collection, 0)
        out: dict[str, StoredPoint] = {}
        for r in records:
            point = _stored(r, _whole(r.vector, lexical) if with_vectors else None)
            out[point.key] = point
        return out

    def search(self, collection: str, queries: Sequence[SearchQuery]) -> list[list[Hit]]:
        if not queries:
            return []
        lexical = self._lexical.get(collection, 0)
        if lexical:
            wholes = whole_vectors(self, collection)
            rankings = functools.partial(self._rankings, collection)
            return [fused_search(q, lexical, rankings, wholes) for q in queries]
        requests = [
            qe.QueryRequest(
                limit=q.limit,
                query=qe.Query.Nearest(as_vector(q.vector).tolist(), using=_VECTOR),
                filter=_filter(q.where),
                with_payload=True,
                params=qe.SearchParams(exact=True) if q.exact else None,
            )
            for q in queries
        ]
        with self._engine():
            results = self._shard(collection).query_batch(qe.QueryBatchRequest(requests))
        return [[_hit(p) for p in r] for r in results]

    def _rankings(
        self, collection: str, parts: Split, n: int, where: Where, exact: bool
    ) -> tuple[list[Hit], list[Hit]]:
        """A hybrid collection's best ``n`` by each part (:data:`stream.store.hybrid.Rankings`)."""
        params = qe.SearchParams(exact=True) if exact else None
        requests = [
            qe.QueryRequest(
                limit=n,
                query=qe.Query.Nearest(parts.dense, using=_VECTOR),
                filter=_filter(where),
                with_payload=True,
                params=params,
            )
        ]
        if parts.indices:
            sparse = qe.SparseVector(parts.indices, parts.values)
            requests.append(
                qe.QueryRequest(
                    limit=n,
                    query=qe.Query.Nearest(sparse, using=LEXICAL),
                    filter=_filter(where),
                    with_payload=True,
                )
            )
        with self._engine():
            results = self._shard(collection).query_batch(qe.QueryBatchRequest(requests))
        dense = [_hit(p) for p in results[0]]
        return dense, [_hit(p) for p in results[1]] if len(results) > 1 else []

    def keys_where(self, collection: str, where: Where, limit: int | None = None) -> list[str]:
        keys: list[str] = []
        offset: Any = None
        while limit is None or len(keys) < limit:
            page = _SCROLL_PAGE if limit is None else min(_SCROLL_PAGE, limit - len(keys))
            with self._engine():
                records, offset = self._shard(collection).scroll(
                    qe.ScrollRequest(
                        offset=offset, limit=page, filter=_filter(where), with_payload=["key"]
                    )
                )
            keys.extend(_key(r.payload) for r in records)
            if offset is None:
                break
        return keys

    def top_by(self, collection: str, field: str, limit: int) -> list[StoredPoint]:
        order = qe.OrderBy(field, qe.Direction.Desc)
        with self._engine():
            records, _ = self._shard(collection).scroll(
                qe.ScrollRequest(limit=limit, order_by=order, with_payload=True)
            )
        return [_stored(r) for r in records]

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
                records, offset = self._shard(collection).scroll(
                    qe.ScrollRequest(
                        offset=offset,
                        limit=_SCROLL_PAGE,
                        filter=_filter(where) if where is not None else None,
                        with_payload=payload_fields(fields),
                        with_vector=with_vectors,
                    )
                )
            lexical = self._lexical.get(collection, 0)
            for r in records:
                yield _stored(r, _whole(r.vector, lexical) if with_vectors else None)
            if offset is None:
                return

    def count(self, collection: str) -> int:
        # Without a filter the engine's estimate is no estimate: each segment's points less
        # its deleted ones, read from its id tracker (0.02 ms at 100,000 points), where the
        # exact count reads every point (6-7 ms on the 2-core machine, once per behaviour batch)
        with self._engine():
            return int(self._shard(collection).count(qe.CountRequest(exact=False)))

    def flush(self) -> None:
        with self._engine():
            for shard in self._shards.values():
                shard.flush()

    def drop_collection(self, name: str) -> None:
        with self._engine():
            shard = self._shards.pop(name, None)
            self._lexical.pop(name, None)
            if shard is not None:
                shard.close()
            path = self.root / name
            if path.is_dir() and path.parent == self.root:
                shutil.rmtree(path)

    def close(self) -> None:
        with self._engine():
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
            self._held.close()  # releases the directory for another process
