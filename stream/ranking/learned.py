"""The learned model and the tuned ranking settings in the store, where every instance reads them.

- ``item_model``: one point per item, its row of the model (``row``: a JSON text of
  ``[item, weight]`` pairs, best first), written by :func:`train_from_store` (``recstream train
  recommender``). A new model replaces the rows item by item; rows of items the new model does
  not know are deleted after.
- ``ranking``: the point ``tuned``, with the settings ``recstream tune`` chose
  (:func:`save_tuned`; consumers apply them over their own settings, :func:`tuned_settings`),
  and the point ``model``, written after every row of a new model: its training time. A
  consumer holds the rows in memory as one sparse matrix (:class:`LoadedModel`) and reads them
  again when that time changes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
import structlog
from pydantic import ValidationError

from schemas import jsontext
from stream.collections import ITEM_MODEL, RANKING, USERS
from stream.ranking.model import ItemModel, train
from stream.ranking.profile import Interaction, history_from_payload
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore

log = structlog.get_logger(__name__)

TUNED_KEY = "tuned"
MODEL_KEY = "model"
TUNABLE = (
    "rank_weight_semantic",
    "rank_weight_collaborative",
    "rank_weight_learned",
    "rank_weight_popularity",
    "rank_weight_price",
    "learned_half_life_hours",
    "learned_l2",
)
"""The settings ``recstream tune`` may choose and consumers take from the store."""

_PLACEHOLDER = np.ones(1, dtype=np.float32)
_CHUNK = 1_000

Rows = dict[str, list[tuple[str, float]]]


def read_rows(store: VectorStore, keys: Sequence[str]) -> Rows:
    """The model rows of the items among ``keys`` that have one."""
    return _parsed_rows(store.retrieve(ITEM_MODEL, list(keys), fields=("row",)).values())


def write_model(store: VectorStore, model: ItemModel, trained_at: datetime) -> None:
    """Replace the stored model by ``model``: its rows, then the deletion of stale ones."""
    stamp = trained_at.isoformat()
    points = [
        StoredPoint(
            item,
            {
                "item_id": item,
                # one JSON text [[item, weight], ...]: far cheaper to write and read than lists
                "row": jsontext.dumps(row),
                "model": model.kind,
                "trained_at": stamp,
            },
            _PLACEHOLDER,
        )
        for item, row in sorted(model.rows.items())
    ]
    for start in range(0, len(points), _CHUNK):
        store.upsert(ITEM_MODEL, points[start : start + _CHUNK])
    stale = [p.key for p in store.scroll(ITEM_MODEL, fields=()) if p.key not in model.rows]
    for start in range(0, len(stale), _CHUNK):
        store.delete(ITEM_MODEL, stale[start : start + _CHUNK])
    marker = {"trained_at": stamp, "kind": model.kind, "rows": len(points)}
    store.upsert(RANKING, [StoredPoint(MODEL_KEY, marker, _PLACEHOLDER)])


def model_stamp(store: VectorStore) -> str:
    """When the stored model was trained ("" when no model marker was ever written)."""
    point = store.retrieve(RANKING, [MODEL_KEY]).get(MODEL_KEY)
    stamp = point.payload.get("trained_at") if point is not None else None
    return stamp if isinstance(stamp, str) else ""


class LoadedModel:
    """The stored model's rows as one sparse matrix (``B[h, j]``: item h predicts item j), read
    again whenever :func:`model_stamp` changes, so a batch folds every shopper in with one
    sparse product instead of reading and summing rows."""

    def __init__(self, store: VectorStore) -> None:
        self.store = store
        self.stamp: str | None = None
        self.index: dict[str, int] = {}
        self.items: list[str] = []
        self.matrix = sp.csr_matrix((0, 0), dtype=np.float64)

    def refresh(self) -> None:
        """Read the rows again if the model changed since they were read (one point read)."""
        stamp = model_stamp(self.store)
        if stamp == self.stamp:
            return
        started = time.perf_counter()
        rows = _parsed_rows(self.store.scroll(ITEM_MODEL, fields=("row",)))
        names = sorted({k for k in rows} | {j for row in rows.values() for j, _ in row})
        index = {k: n for n, k in enumerate(names)}
        indptr = [0]
        cols: list[int] = []
        data: list[float] = []
        for name in names:
            for j, w in rows.get(name, ()):
                cols.append(index[j])
                data.append(w)
            indptr.append(len(cols))
        size = len(names)
        matrix = sp.csr_matrix((data, cols, indptr), shape=(size, size), dtype=np.float64)
        matrix.sum_duplicates()  # also sorts each row's columns
        self.items, self.index, self.matrix, self.stamp = names, index, matrix, stamp
        log.info(
            "model.loaded",
            rows=len(rows),
            weights=matrix.nnz,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def fold_in(self, shoppers: Sequence[Mapping[str, float]]) -> sp.csr_matrix:
        """Every shopper's learned scores, one row each (columns: :attr:`items`): the sum over
        their items h of ``weight_h x B[h, j]`` (:func:`stream.ranking.model.fold_in`, for all
        shoppers at once). Entries may be zero or negative; callers keep the positive ones."""
        indptr = [0]
        cols: list[int] = []
        data: list[float] = []
        for side in shoppers:
            for item, x in side.items():
                at = self.index.get(item)
                if at is not None:
                    cols.append(at)
                    data.append(x)
            indptr.append(len(cols))
        size = len(self.items)
        x = sp.csr_matrix((data, cols, indptr), shape=(len(shoppers), size), dtype=np.float64)
        scores = (x @ self.matrix).tocsr()
        scores.sort_indices()
        return scores


def _parsed_rows(points: Iterable[StoredPoint]) -> Rows:
    rows: Rows = {}
    for point in points:
        row = point.payload.get("row")
        try:
            entries = jsontext.loads(row) if isinstance(row, str) else None
        except ValueError:
            entries = None
        if isinstance(entries, list):
            rows[point.key] = [(str(i), float(w)) for i, w in entries]
    return rows


def stored_histories(store: VectorStore) -> dict[str, list[Interaction]]:
    """Every shopper's history as the behaviour consumer stored it."""
    out = {}
    for point in store.scroll(USERS, fields=("history",)):
        history = history_from_payload(point.payload.get("history"))
        if history:
            out[point.key] = history
    return out


@dataclass(frozen=True)
class Training:
    model: ItemModel
    seconds: float


def train_model(settings: Settings, histories: Mapping[str, Sequence[Interaction]]) -> ItemModel:
    """The model of ``histories`` with the settings' hyperparameters."""
    return train(
        histories,
        settings.behaviour_weights(),
        half_life_hours=settings.learned_half_life_hours,
        l2=settings.learned_l2,
        neighbours=settings.learned_neighbours,
        dense_max_items=settings.learned_dense_max_items,
    )


def train_from_store(settings: Settings, store: VectorStore) -> Training:
    """Train on every stored history and write the model; the model and the seconds taken."""
    started = time.perf_counter()
    histories = stored_histories(store)
    model = train_model(settings, histories)
    write_model(store, model, datetime.now(UTC))
    seconds = time.perf_counter() - started
    log.info(
        "model.trained",
        kind=model.kind,
        shoppers=model.shoppers,
        items=model.items,
        interactions=model.interactions,
        rows=len(model.rows),
        s=round(seconds, 2),
    )
    return Training(model, seconds)


def save_tuned(store: VectorStore, values: Mapping[str, float], report: Mapping[str, Any]) -> None:
    """Store the tuned settings (names from :data:`TUNABLE`) and what the tuning measured."""
    unknown = sorted(set(values) - set(TUNABLE))
    if unknown:
        raise ValueError(f"not tunable: {', '.join(unknown)}")
    payload = {"values": dict(values), "report": dict(report), "at": datetime.now(UTC).isoformat()}
    store.upsert(RANKING, [StoredPoint(TUNED_KEY, payload, _PLACEHOLDER)])


def load_tuned(store: VectorStore) -> dict[str, float]:
    """The tuned settings in the store; empty when ``recstream tune`` never stored any."""
    point = store.retrieve(RANKING, [TUNED_KEY]).get(TUNED_KEY)
    values = point.payload.get("values") if point is not None else None
    if not isinstance(values, dict):
        return {}
    return {k: float(v) for k, v in values.items() if k in TUNABLE}


def tuned_settings(settings: Settings, store: VectorStore) -> Settings:
    """``settings`` with the stored tuned values over them (unless ``rank_tuned`` is off).

    Values that no longer validate (a setting's bounds changed) are ignored with a warning.
    """
    if not settings.rank_tuned:
        return settings
    values = load_tuned(store)
    if not values:
        return settings
    try:
        return Settings.model_validate({**settings.model_dump(), **values})
    except ValidationError as exc:
        log.warning("ranking.tuned_ignored", error=str(exc).splitlines()[0])
        return settings
