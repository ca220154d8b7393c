"""Recommendations for a batch of shoppers, from what the store holds: candidates, then a blend.

Candidates come from four sources, each at most ``rank_candidates`` items per shopper: the items
nearest to the shopper's profile vector (semantic), the items that co-occur with the shopper's
recent items (collaborative), the items the learned model scores highest for the shopper's
history (learned) and the most popular items (cold start). Every candidate then gets all five
components, so a popular item can also score on price, and a semantic one on popularity.

A batch costs a fixed number of store calls whatever its size: the items' vectors, prices and
stock come from an in-memory copy (:class:`~stream.ranking.candidates.ItemIndex`, caught up with
the store's changes before each batch: one filtered read and one count), the semantic
candidates from one batched search of that copy; then one read of the recent items' statistics,
one popularity query and one read of the candidates' popularity. The learned model's rows are
held in memory (read again when a new model is stored), and every shopper is folded in with one
sparse product. All times are the shopper's last interaction time, so the same history always
gives the same list, whenever and with whomever it is computed.

The profiles' search runs on a worker thread while the batch reads the statistics and folds
the shoppers into the model: its products and top-k selection release the interpreter's lock,
so the two overlap on two cores (nothing else touches the copy meanwhile: it is caught up
before, and its table made after, the search).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import structlog

from stream.catalog.neighbours import screened
from stream.collections import ITEM_STATS
from stream.ranking.blend import (
    COMPONENTS,
    Ranked,
    Scored,
    Weights,
    blended,
    price_affinity,
    unit_profile,
)
from stream.ranking.candidates import ItemIndex
from stream.ranking.learned import LoadedModel, tuned_settings
from stream.ranking.model import shopper_weights
from stream.ranking.pairs import Pairs, lookup, owned, owners
from stream.ranking.profile import (
    Interaction,
    price_preference,
    profile_vector,
    recent_items,
    recently_purchased,
)
from stream.ranking.stats import (
    NO_POPULARITY,
    RECORD,
    DamagedStats,
    cooccurrence,
    half_lives,
)
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore
from stream.store.base import Vector

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Recommendation:
    ranked: list[Ranked]
    profile: Vector | None


@dataclass(frozen=True)
class _Shopper:
    history: Sequence[Interaction]
    ref: datetime
    profile: Vector | None
    exclude: set[str]
    recent: list[str]


@dataclass(frozen=True)
class _Behaviour:
    popular: list[str]
    known: dict[str, float]
    """Log popularity of the recent and the most popular items (NaN: none)."""
    ceiling: float
    """At most this for every other item's log popularity (NaN: none has any)."""
    co_index: dict[str, int]
    co_matrix: sp.csr_matrix
    """Each shopper's co-occurrence scores (a row each; columns: ``co_index``)."""
    folded: sp.csr_matrix
    """Each shopper's learned scores (a row each; columns: the model's items)."""
    co_best: _Best
    learned_best: _Best


class Recommender:
    """Ranks with the settings given, or with the tuned ones the store holds (re-read every
    ``rank_reload_s``; ``rank_tuned`` off keeps the settings given)."""

    def __init__(self, settings: Settings, store: VectorStore) -> None:
        self.base = settings
        self.store = store
        self._loaded_at = -float("inf")
        self._index: ItemIndex | None = None
        self.model = LoadedModel(store)
        self.s = settings
        self.weights = Weights.from_settings(settings)
        self._searcher = futures.ThreadPoolExecutor(1, thread_name_prefix="profile-search")

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._loaded_at < self.base.rank_reload_s:
            return
        self._loaded_at = now
        self.s = tuned_settings(self.base, self.store)
        self.weights = Weights.from_settings(self.s)

    def recommend(self, history: Sequence[Interaction]) -> Recommendation:
        """One shopper's list (``recommendations_n`` long at most) and profile vector."""
        return self.recommend_many({"": history})[""]

    def recommend_many(
        self, histories: Mapping[str, Sequence[Interaction]]
    ) -> dict[str, Recommendation]:
        """Every shopper's list and profile vector, computed together."""
        self._refresh()
        best = None if self.s.rank_mmr_lambda < 1.0 else (self.weights, self.s.recommendations_n)
        scored, shoppers = self.score_many(histories, best)
        return {
            user: Recommendation(
                scored[user].ranked(self.weights, self.s.recommendations_n, self.s.rank_mmr_lambda)
                if user in scored
                else [],
                shoppers[user].profile if user in shoppers else None,
            )
            for user in histories
        }

    def score_many(
        self,
        histories: Mapping[str, Sequence[Interaction]],
        best: tuple[Weights, int] | None = None,
    ) -> tuple[dict[str, Scored], dict[str, _Shopper]]:
        """Every shopper's eligible candidates and their components, before weighting.

        With ``best`` (weights, n), only the best ``n`` by those weights need be right: the
        popularity of a candidate that cannot reach them is not read, and its component is its
        upper bound (:func:`_unread`), which keeps it out of them as its own value would.
        """
        s = self.s
        store = self.store
        histories = {u: h for u, h in histories.items() if h}
        touched = sorted({i.item_id for h in histories.values() for i in h})
        index = self._items()
        items_known = index.points(touched)
        vectors = {k: p.vector for k, p in items_known.items() if p.vector is not None}
        weights = s.behaviour_weights()
        shoppers: dict[str, _Shopper] = {}
        for user, history in histories.items():
            ref = max(i.at for i in history)
            shoppers[user] = _Shopper(
                history,
                ref,
                profile_vector(history, vectors, weights, s.profile_half_life_hours),
                recently_purchased(history, ref, s.rank_exclude_purchased_days),
                recent_items(history, s.cooccurrence_window),
            )

        searching = self._searcher.submit(self._semantic, index, shoppers)
        try:
            b = self._behaviour(shoppers)
        finally:  # the search reads the copy: it never runs on past the batch
            futures.wait([searching])
        semantic = searching.result()
        named = {*b.popular, *b.co_best.names, *b.learned_best.names}
        for user in shoppers:
            named.update(semantic.get(user, ()))
        table = index.table(sorted(named))
        users = list(shoppers)
        # every shopper's candidates as (shopper, table row) pairs: each source's best, the
        # most popular, less what the shopper is excluded from and what is out of stock
        sem_owner, sem_keys = owned([semantic.get(u, ()) for u in users])
        ex_owner, ex_keys = owned([sorted(shoppers[u].exclude) for u in users])
        popular_rows = _positions([k for k in b.popular if k in table.row], table.row)
        pairs = Pairs.of(
            len(users),
            [
                (sem_owner, _positions(sem_keys, table.row)),
                b.co_best.pairs(table.row),
                b.learned_best.pairs(table.row),
                (owners([len(popular_rows)] * len(users)), np.tile(popular_rows, len(users))),
            ],
            (ex_owner, _positions(ex_keys, table.row)),
            table.in_stock,
        )
        owner, rows = pairs.owner, pairs.row
        prices = {k: p.payload.get("price") for k, p in items_known.items()}
        preferences = [price_preference(sh.history, prices) for sh in shoppers.values()]
        components = np.zeros((len(pairs), len(COMPONENTS)), dtype=np.float64)
        components[:, _SEMANTIC] = _cosines(
            table.unit, pairs, [sh.profile for sh in shoppers.values()]
        )
        co = lookup(b.co_matrix, owner, _positions(table.keys, b.co_index)[rows])
        components[:, _COLLABORATIVE] = pairs.shares(co)
        learned = lookup(b.folded, owner, _positions(table.keys, self.model.index)[rows])
        components[:, _LEARNED] = pairs.shares(learned)
        centres = np.array([np.nan if p is None else p for p in preferences], np.float64)
        components[:, _PRICE] = price_affinity(
            table.prices[rows], centres[owner], s.rank_price_sigma
        )
        # the candidates' popularity: one read of those that matter, then each shopper's shares
        row_pop = np.fromiter((b.known.get(k, np.inf) for k in table.keys), np.float64)
        wanted = sorted(
            {
                table.keys[r]
                for r in rows[_unread(pairs, components, row_pop[rows], b.ceiling, best)].tolist()
            }
        )
        read = store.retrieve(ITEM_STATS, wanted, fields=("pop_key",))
        b.known.update((k, _log_popularity(read[k].payload if k in read else None)) for k in wanted)
        for r in np.flatnonzero(np.isposinf(row_pop)).tolist():
            row_pop[r] = b.known.get(table.keys[r], b.ceiling)  # read, or at most the ceiling
        components[:, _POPULARITY] = pairs.relative(row_pop[rows])
        mmr = s.rank_mmr_lambda < 1.0
        ids = [table.keys[r] for r in rows.tolist()]
        scored = {}
        for n, user in enumerate(users):
            lo, hi = pairs.starts[n], pairs.starts[n + 1]
            unit = table.unit[rows[lo:hi]].astype(np.float64) if mmr else np.zeros((hi - lo, 0))
            scored[user] = Scored(ids[lo:hi], unit, components[lo:hi])
        return scored, shoppers

    def _semantic(self, index: ItemIndex, shoppers: Mapping[str, _Shopper]) -> dict[str, list[str]]:
        """The items nearest each profile, one batched search of the in-memory copy."""
        profiles = {u: sh.profile for u, sh in shoppers.items() if sh.profile is not None}
        if not profiles:
            return {}
        exclude = {u: shoppers[u].exclude for u in profiles}
        return index.nearest(profiles, exclude, self.s.rank_candidates)

    def _behaviour(self, shoppers: Mapping[str, _Shopper]) -> _Behaviour:
        """The candidates and components that come from behaviour: co-occurrence with each
        shopper's recent items (one read of their statistics), the learned model folded in,
        the most popular items and the popularity known so far."""
        s = self.s
        recent = sorted({k for sh in shoppers.values() for k in sh.recent})
        stats = self.store.retrieve(ITEM_STATS, recent, fields=(RECORD, "co", "ref", "pop_key"))
        co_items, co_matrix = _cooccurrence(stats, shoppers, s.popularity_half_life_hours)
        self.model.refresh()
        weights = s.behaviour_weights()
        folded = self.model.fold_in(
            [
                shopper_weights(sh.history, weights, s.learned_half_life_hours, sh.ref)
                for sh in shoppers.values()
            ]
        )
        top = self.store.top_by(ITEM_STATS, "pop_key", s.rank_candidates)
        # log popularity at a shared time (the stored sort key): each item's share of the
        # largest does not depend on the time it is counted at (decay is the same factor for
        # all), so one value per item; known for the most popular and the recent items
        known = {k: _log_popularity(p.payload) for k, p in stats.items()}
        known.update((p.key, _log_popularity(p.payload)) for p in top)
        # every other item's is at most the least of the most popular, when those were as
        # many as asked for and all have one; none at all otherwise
        least = [known[p.key] for p in top]
        ceiling = (
            min(least) if len(top) == s.rank_candidates and np.isfinite(least).all() else np.nan
        )
        # each source's best as positions in its own columns, named once per distinct column
        collaborative = [_Sparse.row(co_matrix, n) for n in range(len(shoppers))]
        learned = [_Sparse.row(folded, n) for n in range(len(shoppers))]
        return _Behaviour(
            popular=[p.key for p in top if np.isfinite(_log_popularity(p.payload))],
            known=known,
            ceiling=ceiling,
            co_index={k: n for n, k in enumerate(co_items)},
            co_matrix=co_matrix,
            folded=folded,
            co_best=_Best.of(collaborative, s.rank_candidates, co_items),
            learned_best=_Best.of(learned, s.rank_candidates, self.model.items),
        )

    def _items(self) -> ItemIndex:
        """The copy of the items' vectors, caught up with the store (once per batch)."""
        if self._index is None:
            k = self.base.rank_candidates + self.base.history_max
            self._index = ItemIndex(
                self.store,
                k,
                self.base.rank_index_refresh_s,
                self.base.rank_lexical,
                rough=screened(self.base.rank_precision),
            )
        else:
            self._index.catch_up()
        return self._index

    def close(self) -> None:
        """Stop refreshing the copy of the items' vectors, and the search's worker (a closed
        recommender ranks no more)."""
        self._searcher.shutdown()
        if self._index is not None:
            self._index.close()


def _cooccurrence(
    stats: Mapping[str, StoredPoint], shoppers: Mapping[str, _Shopper], half_life_hours: float
) -> tuple[list[str], sp.csr_matrix]:
    """Each shopper's co-occurrence scores (a row each; columns: the items returned, in id
    order): the sum over their recent items of each item's co-occurring weights as they count
    at the shopper's time (:func:`stream.ranking.stats.cooccurrence_at`, for all at once),
    each row scaled by one positive factor of its own so that no decay factor overflows."""
    parsed = {k: _stored_cooccurrence(k, p) for k, p in stats.items()}
    names = sorted({other for _, co in parsed.values() for other in co})
    column = {k: n for n, k in enumerate(names)}
    held = [k for k, (at, co) in parsed.items() if at is not None and co]
    row = {k: n for n, k in enumerate(held)}
    times = {k: at for k, (at, _) in parsed.items() if at is not None}
    indptr, cols, data = [0], [], []
    for k in held:
        for other, w in parsed[k][1].items():
            cols.append(column[other])
            data.append(w)
        indptr.append(len(cols))
    items = sp.csr_matrix((data, cols, indptr), shape=(len(held), len(names)), dtype=np.float64)
    # Each item's factor is 2^-(half-lives from its stats' time to the shopper's), which is
    # past any float when the stats are ~1,024 half-lives later (a shopper's events years older
    # than others'). A row's factors are divided by its largest: the blend takes each score's
    # share of the shopper's largest, which one positive factor per row leaves as it is.
    indptr, cols = [0], []
    exponents: list[float] = []
    for sh in shoppers.values():
        own = [
            (row[k], -half_lives(times[k], sh.ref, half_life_hours)) for k in sh.recent if k in row
        ]
        largest = max((e for _, e in own), default=0.0)
        cols.extend(c for c, _ in own)
        exponents.extend(e - largest for _, e in own)
        indptr.append(len(cols))
    factors = np.exp2(np.asarray(exponents, dtype=np.float64))
    decay = sp.csr_matrix(
        (factors, cols, indptr), shape=(len(shoppers), len(held)), dtype=np.float64
    )
    scores = (decay @ items).tocsr()
    scores.sort_indices()
    return names, scores


def _stored_cooccurrence(key: str, point: StoredPoint) -> tuple[datetime | None, dict[str, float]]:
    """The item's stored co-occurrence; none from a damaged record, which the item-stats
    consumer starts afresh at the item's next activity."""
    try:
        return cooccurrence(point.payload)
    except DamagedStats as exc:
        log.warning("recommend.damaged_stats", item_id=key, error=str(exc))
        return None, {}


@dataclass(frozen=True)
class _Sparse:
    """One shopper's positive learned scores: model columns (ascending) and their values."""

    cols: npt.NDArray[np.int32]
    values: npt.NDArray[np.float64]

    @classmethod
    def row(cls, matrix: sp.csr_matrix, n: int) -> _Sparse:
        lo, hi = matrix.indptr[n], matrix.indptr[n + 1]
        cols, values = matrix.indices[lo:hi], matrix.data[lo:hi]
        keep = (values > 0) & np.isfinite(values)
        return cls(cols[keep], values[keep])

    def best_columns(self, n: int) -> npt.NDArray[np.int64]:
        """The columns of the ``n`` best items, ties by item id (columns are in id order)."""
        order = np.lexsort((self.cols, -self.values))[:n]
        return self.cols[order].astype(np.int64)


@dataclass(frozen=True)
class _Best:
    """One source's best columns for each shopper of a batch, and the distinct ones among them
    (ascending) with their names: each named, and later given a table row, once per batch."""

    shoppers: list[npt.NDArray[np.int64]]
    columns: npt.NDArray[np.int64]
    names: list[str]

    @classmethod
    def of(cls, rows: Sequence[_Sparse], n: int, names: Sequence[str]) -> _Best:
        shoppers = [row.best_columns(n) for row in rows]
        columns = np.unique(np.concatenate(shoppers)) if shoppers else np.zeros(0, np.int64)
        return cls(shoppers, columns, [names[c] for c in columns.tolist()])

    def pairs(self, row: Mapping[str, int]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """Every shopper's best as (shopper, table row) pairs (row -1 where the table has
        none), given each name's table ``row``."""
        counts = [len(best) for best in self.shoppers]
        if not sum(counts):
            return owners(counts), np.zeros(0, dtype=np.intp)
        best = np.concatenate(self.shoppers)
        return owners(counts), _positions(self.names, row)[np.searchsorted(self.columns, best)]


def _positions(keys: Iterable[str], index: Mapping[str, int]) -> npt.NDArray[np.int64]:
    """Each key's position in ``index`` (a table row, a model column), -1 where it has none."""
    return np.fromiter((index.get(k, -1) for k in keys), np.int64)


def _cosines(
    unit: npt.NDArray[np.float32], pairs: Pairs, profiles: Sequence[Vector | None]
) -> npt.NDArray[np.float64]:
    """Each pair's semantic component: the cosine of its row with its shopper's unit profile
    (in the rows' precision, clipped to [0, 1]; 0 for a shopper without a profile). A shopper
    at a time: their rows (~150) gathered and multiplied in cache, where gathering every
    pair's row and profile at once moved three times the memory (256 shoppers: 14.2 -> 8.4
    ms, the same numbers)."""
    out = np.zeros(len(pairs), dtype=np.float64)
    if not unit.shape[1]:
        return out
    for n, profile in enumerate(profiles):
        u = unit_profile(profile)
        lo, hi = pairs.starts[n], pairs.starts[n + 1]
        if u is None or lo == hi:
            continue
        products = np.einsum("ij,j->i", unit[pairs.row[lo:hi]], u.astype(unit.dtype))
        out[lo:hi] = np.clip(products.astype(np.float64), 0.0, 1.0)
    return out


_SEMANTIC = COMPONENTS.index("semantic")
_COLLABORATIVE = COMPONENTS.index("collaborative")
_PRICE = COMPONENTS.index("price")
_LEARNED = COMPONENTS.index("learned")
_POPULARITY = COMPONENTS.index("popularity")


def _unread(
    pairs: Pairs,
    components: npt.NDArray[np.float64],
    logs: npt.NDArray[np.float64],
    ceiling: float,
    best: tuple[Weights, int] | None,
) -> npt.NDArray[np.intp]:
    """The pairs whose popularity must be read (``logs``: their log popularity where known,
    NaN for none, +inf where unknown; ``ceiling``: at most this for every unknown one, NaN
    when none of them has any; ``components``: the popularity column still 0).

    Without ``best``, every unknown one. With it (weights, n), only those that could be among
    their shopper's best ``n``: each unknown one counted at the ceiling scores at most
    ``high``; every candidate counted at 0 where unknown scores at least ``low``; one whose
    ``high`` is below its shopper's n-th best ``low`` has at least n candidates above it however
    it is read. The shares are of the shopper's largest popularity: when a known one is at
    least the ceiling, it is that one whatever the unknown are, else every unknown one of that
    shopper is read (as for a shopper with n candidates or fewer)."""
    unknown = np.isposinf(logs)
    if not unknown.any() or not np.isfinite(ceiling):
        return np.zeros(0, dtype=np.intp)  # none unknown, or none has any
    if best is None:
        return np.flatnonzero(unknown)
    weights, n = best
    largest = pairs.largest(np.where(np.isfinite(logs), logs, -np.inf), -np.inf)
    every = (np.diff(pairs.starts) <= n) | (largest < ceiling)
    base = blended(components, weights.vector())
    low = base + weights.popularity * pairs.relative(np.where(unknown, np.nan, logs))
    high = base + weights.popularity * pairs.relative(np.where(unknown, ceiling, logs))
    # a margin far above rounding: these sums are not formed as the list's own scores are
    bar = pairs.nth_largest(low, n) - 1e-9
    owner = pairs.owner
    return np.flatnonzero(unknown & (every[owner] | (high >= bar[owner])))


def _log_popularity(payload: Mapping[str, Any] | None) -> float:
    key = payload.get("pop_key") if payload is not None else None
    if isinstance(key, int | float) and not isinstance(key, bool) and key > NO_POPULARITY:
        return float(key)
    return np.nan
