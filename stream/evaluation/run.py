"""``recstream eval recommendations``: a temporal-split evaluation on the Online Retail data.

Everything a shopper's list depends on goes through the consumers' own code: titles through the
real encoder into the ``items`` collection, pre-cutoff purchases through ``activities_for`` and
the item-stats fold into ``item_stats``, and each list from :class:`Recommender`. Nothing after
the cutoff reaches the store; it only decides what counts as a hit.

Two phases are CPU-bound Python and run in ``workers`` processes: folding item statistics
(items are independent, as in the item-stats consumer) and recommending (each process reads its
own copy of the finished store, because a Qdrant Edge shard opens in one process only).
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from encoders import Encoder, load_encoder
from stream.behaviour.item_stats import fold_item_activities
from stream.behaviour.profile import Interaction
from stream.behaviour.stats import ItemActivity, activities_for
from stream.collections import ITEM_STATS, ITEMS, ensure_collections
from stream.evaluation.metrics import Metric, hit_rate, mean_over_users, ndcg, recall
from stream.evaluation.online_retail import Item, load_online_retail
from stream.evaluation.split import history_before, temporal_split
from stream.ranking.recommender import Recommender
from stream.settings import Settings
from stream.store import StoredPoint, VectorStore
from stream.store.edge import EdgeStore

log = structlog.get_logger(__name__)

RESULT_FILE = "recommendations-eval.json"
LIST_LENGTH = 20
SAMPLE_SEED = 20111001
# every pre-cutoff purchase is excluded (about 100 years): the truth holds only new items
EXCLUDE_ALL_DAYS = 36_500.0
_UPSERT_CHUNK = 512
_STATS_PLACEHOLDER = np.ones(1, dtype=np.float32)

METHODS: dict[str, dict[str, float]] = {
    "recstream": {},  # the blend with the settings' own weights
    "popular": {
        "rank_weight_semantic": 0.0,
        "rank_weight_collaborative": 0.0,
        "rank_weight_popularity": 1.0,
        "rank_weight_price": 0.0,
    },
    "cooccurrence": {
        "rank_weight_semantic": 0.0,
        "rank_weight_collaborative": 1.0,
        "rank_weight_popularity": 0.0,
        "rank_weight_price": 0.0,
    },
}
METRICS: dict[str, tuple[Metric, int]] = {
    "hit_rate@10": (hit_rate, 10),
    "ndcg@10": (ndcg, 10),
    "recall@20": (recall, 20),
}
_RANKING_SETTINGS = (
    "recommendations_n",
    "rank_candidates",
    "rank_price_sigma",
    "rank_exclude_purchased_days",
    "rank_mmr_lambda",
    "profile_half_life_hours",
    "popularity_half_life_hours",
    "cooccurrence_window",
    "cooccurrence_max",
    "history_max",
    "weight_purchase",
    "max_seq_length",
)

Histories = Mapping[str, Sequence[Interaction]]


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 3)
        log.info("eval.phase", phase=name, s=self.seconds[name])


def evaluate(
    settings: Settings,
    data_path: str | Path,
    cutoff: datetime,
    max_users: int | None = None,
    max_rows: int | None = None,
    out_dir: str | Path | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Hit rate, NDCG and recall of each method's lists on purchases after ``cutoff``.

    The catalogue is what sold before the cutoff (what the shop knew then); ``max_users`` draws
    a fixed-seed sample of the evaluated shoppers; ``workers`` defaults to one per CPU. The
    result is also written to ``<out_dir>/recommendations-eval.json`` when ``out_dir`` is given.
    """
    started = time.perf_counter()
    load_before = os.getloadavg()
    timer = _Timer()
    workers = max(1, workers if workers is not None else os.cpu_count() or 1)
    s = settings.model_copy(
        update={"recommendations_n": LIST_LENGTH, "rank_exclude_purchased_days": EXCLUDE_ALL_DAYS}
    )
    with timer.phase("load"):
        data = load_online_retail(data_path, max_rows=max_rows)
    history = history_before(data.purchases, cutoff)
    catalogue = {i.item_id for p in history.values() for i in p}
    split = temporal_split(data.purchases, cutoff, catalogue)
    users = split.users
    if max_users is not None and max_users < len(users):
        users = sorted(random.Random(SAMPLE_SEED).sample(users, max_users))
    log.info("eval.split", customers=len(history), items=len(catalogue), users=len(users))
    if not users:
        raise ValueError(f"no shopper bought anything both before and from {cutoff.isoformat()}")

    with tempfile.TemporaryDirectory(prefix="recstream-eval-") as workdir:
        root = Path(workdir) / "qdrant"
        store = EdgeStore(root)
        try:
            with timer.phase("encoder_load"):
                encoder = load_encoder(s)
            ensure_collections(store, encoder.dim)
            with timer.phase("encode"):
                _store_items(store, encoder, [data.items[k] for k in sorted(catalogue)])
            with timer.phase("item_stats"):
                activities = _store_item_stats(store, history, s, workers)
        finally:
            store.close()
        with timer.phase("recommend"):
            ranked, busy = _recommend(root, encoder.dim, s, split.history, users, workers)

    truth = {u: split.truth[u] for u in users}
    figures = {
        method: {
            name: round(mean_over_users(metric, lists, truth, k), 6)
            for name, (metric, k) in METRICS.items()
        }
        for method, lists in ranked.items()
    }
    for method, f in figures.items():
        log.info("eval.method", method=method, users=len(users), **f)
    result = {
        "dataset": "online_retail",
        "data": str(data_path),
        "cutoff": cutoff.isoformat(),
        "methods": figures,
        "users": len(users),
        "eligible_users": len(split.truth),
        "customers_with_history": len(history),
        "items": len(catalogue),
        "history_purchases": sum(len(p) for p in history.values()),
        "item_activities": activities,
        "rows_read": data.rows_read,
        "purchase_rows": data.rows_kept,
        "max_users": max_users,
        "max_rows": max_rows,
        "sample_seed": SAMPLE_SEED,
        "weights": {m: _weights(s.model_copy(update=w)) for m, w in METHODS.items()},
        "settings": {name: getattr(s, name) for name in _RANKING_SETTINGS},
        "model": encoder.name,
        "device": encoder.device,
        "workers": workers,
        "timings_s": {**timer.seconds, "total": round(time.perf_counter() - started, 3)},
        # summed over the workers: the cost of one method's lists, not wall time
        "recommend_process_s": busy,
        "ms_per_list": {m: round(1000 * t / len(users), 2) for m, t in busy.items()},
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            # other work on the machine stretches every timing: the 1-minute load, before/after
            "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        },
    }
    if out_dir is not None:
        path = Path(out_dir) / RESULT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        result["path"] = str(path)
    return result


def parse_cutoff(text: str) -> datetime:
    """An ISO 8601 date or date-time; without a zone it is UTC, the data's own clock."""
    try:
        cutoff = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"cutoff {text!r} is not an ISO date such as 2011-10-01") from None
    return cutoff if cutoff.tzinfo is not None else cutoff.replace(tzinfo=UTC)


def format_table(result: Mapping[str, Any]) -> str:
    """The figures of :func:`evaluate` as a readable table, with what produced them."""
    header = f"{'method':<14}{'HitRate@10':>12}{'NDCG@10':>10}{'Recall@20':>11}{'users':>8}"
    lines = [
        f"recommendations on {result['dataset']}, cutoff {result['cutoff']}: "
        f"{result['users']} users, {result['items']} items, "
        f"{result['history_purchases']} purchases before the cutoff",
        header,
        "-" * len(header),
    ]
    for method, f in result["methods"].items():
        lines.append(
            f"{method:<14}{f['hit_rate@10']:>12.4f}{f['ndcg@10']:>10.4f}"
            f"{f['recall@20']:>11.4f}{result['users']:>8}"
        )
    weights = ", ".join(f"{k} {v:g}" for k, v in result["weights"]["recstream"].items())
    lines.append(
        f"recstream weights: {weights}; model {result['model']} on {result['device']}; "
        f"{result['timings_s']['total']:.1f} s"
    )
    return "\n".join(lines)


def _store_items(store: VectorStore, encoder: Encoder, items: Sequence[Item]) -> None:
    """Encode the titles and upsert the payload fields the Recommender reads."""
    for start in range(0, len(items), _UPSERT_CHUNK):
        chunk = items[start : start + _UPSERT_CHUNK]
        vectors = encoder.encode([i.title for i in chunk])
        payloads = [
            {"item_id": i.item_id, "title": i.title, "price": i.price, "in_stock": True}
            for i in chunk
        ]
        store.upsert(
            ITEMS,
            [
                StoredPoint(i.item_id, {**p, "model": encoder.name}, v)
                for i, p, v in zip(chunk, payloads, vectors, strict=True)
            ],
        )
        log.debug("eval.encoded", items=start + len(chunk), of=len(items))


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent holds torch's and the store engine's threads
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"))


def _store_item_stats(store: VectorStore, history: Histories, s: Settings, workers: int) -> int:
    """Replay the pre-cutoff purchases through the item-stats path; the number of activities."""
    if workers == 1:
        parts = [_fold_shard(history, s, 0, 1)]
    else:
        with _pool(workers) as pool:
            jobs = [pool.submit(_fold_shard, history, s, k, workers) for k in range(workers)]
            parts = [job.result() for job in jobs]
    points = [
        StoredPoint(item_id, payload, _STATS_PLACEHOLDER)
        for payloads, _ in parts
        for item_id, payload in sorted(payloads.items())
    ]
    for start in range(0, len(points), _UPSERT_CHUNK):
        store.upsert(ITEM_STATS, points[start : start + _UPSERT_CHUNK])
    return sum(count for _, count in parts)


def _fold_shard(
    history: Histories, s: Settings, shard: int, shards: int
) -> tuple[dict[str, dict[str, Any]], int]:
    """The stats payloads of one shard of the items, and the number of their activities.

    Each purchase pairs with the shopper's earlier purchases as the behaviour consumer sees
    them: within the bounded history (``history_max``), one event at a time. Every source is
    unique here (nothing is replayed), so a dedupe memory of one entry changes no figure; the
    full one would only slow every read of the stats.
    """
    weights = s.behaviour_weights()
    by_item: dict[str, list[ItemActivity]] = {}
    for user in sorted(history):
        purchases = history[user]
        for k, interaction in enumerate(purchases):
            previous = purchases[max(0, k + 1 - s.history_max) : k + 1]
            source = f"online_retail/{interaction.event_id}"
            for activity in activities_for(
                interaction, previous, weights, s.cooccurrence_window, source
            ):
                if zlib.crc32(activity.item_id.encode()) % shards == shard:
                    by_item.setdefault(activity.item_id, []).append(activity)
    payloads: dict[str, dict[str, Any]] = {}
    count = 0
    for item_id, activities in by_item.items():
        activities.sort(key=lambda a: (a.at, a.source))
        payload, _ = fold_item_activities(
            None, activities, s.popularity_half_life_hours, s.cooccurrence_max, max_seen=1
        )
        count += len(activities)
        if payload is not None:
            payloads[item_id] = payload
    return payloads, count


def _recommend(
    root: Path, dim: int, s: Settings, history: Histories, users: Sequence[str], workers: int
) -> tuple[dict[str, dict[str, list[str]]], dict[str, float]]:
    """Every method's list (item ids) per user, and each method's seconds over all workers."""
    shards = [{u: history[u] for u in users[k::workers]} for k in range(workers)]
    shards = [shard for shard in shards if shard]
    if len(shards) == 1:
        parts = [_recommend_shard(root, dim, s, shards[0])]
    else:
        paths = [root, *(root.with_name(f"{root.name}-{k}") for k in range(1, len(shards)))]
        for path in paths[1:]:
            shutil.copytree(root, path)
        with _pool(len(shards)) as pool:
            futures = [
                pool.submit(_recommend_shard, path, dim, s, shard)
                for path, shard in zip(paths, shards, strict=True)
            ]
            parts = [f.result() for f in futures]
    ranked = {m: {u: r for lists, _ in parts for u, r in lists[m].items()} for m in METHODS}
    busy = {m: round(sum(seconds[m] for _, seconds in parts), 3) for m in METHODS}
    return ranked, busy


def _recommend_shard(
    root: Path, dim: int, s: Settings, history: Histories
) -> tuple[dict[str, dict[str, list[str]]], dict[str, float]]:
    """One worker's lists for its users, every method, from its own copy of the store."""
    store = EdgeStore(root)
    lists: dict[str, dict[str, list[str]]] = {}
    seconds: dict[str, float] = {}
    try:
        ensure_collections(store, dim)
        for method, update in METHODS.items():
            started = time.perf_counter()
            recommender = Recommender(s.model_copy(update=update), store)
            lists[method] = {
                u: [r.item_id for r in recommender.recommend(h).ranked] for u, h in history.items()
            }
            seconds[method] = time.perf_counter() - started
    finally:
        store.close()
    return lists, seconds


def _weights(s: Settings) -> dict[str, float]:
    return {
        "semantic": s.rank_weight_semantic,
        "collaborative": s.rank_weight_collaborative,
        "popularity": s.rank_weight_popularity,
        "price": s.rank_weight_price,
    }
