"""Choosing the blend's weights and the model's hyperparameters on the shop's own history.

The history is cut at a validation cutoff (the last ``fraction`` of its time span by default):
what came before builds the store (items, statistics, model) and the shoppers' inputs, what came
after is the truth. Nothing at or after the history's own end is read, so an evaluation period
that follows the history is never seen. For each model setting on a small grid, every
validation shopper's candidates and components are computed once by the Recommender; weight
vectors are then tried on them in bulk (the components do not depend on the weights): the
defaults, each component alone, seeded random mixtures, and perturbations of the best.
NDCG@10 decides.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import structlog

from recstream_tools.evaluation.split import Split, history_before, temporal_split
from stream.ranking.blend import COMPONENTS, Scored, blended
from stream.ranking.profile import Interaction
from stream.settings import Settings
from stream.store import VectorStore

log = structlog.get_logger(__name__)

Histories = Mapping[str, Sequence[Interaction]]
_WEIGHT = {name: f"rank_weight_{name}" for name in COMPONENTS}
_GRID_SCALES = (1 / 3, 1.0, 3.0)
MIN_VALIDATION_USERS = 20
"""Fewer validation shoppers than this make any choice noise: ``recstream tune`` refuses."""


@dataclass(frozen=True)
class Tuning:
    values: dict[str, float]
    """The chosen settings (names of :data:`stream.ranking.learned.TUNABLE`)."""
    before: dict[str, float]
    """Validation figures of the settings given."""
    after: dict[str, float]
    """Validation figures of the chosen settings."""
    cutoff: datetime
    users: int
    tried: int
    seconds: float

    def report(self) -> dict[str, Any]:
        return {
            "validation_cutoff": self.cutoff.isoformat(),
            "validation_users": self.users,
            "before": self.before,
            "after": self.after,
            "tried": self.tried,
            "seconds": round(self.seconds, 1),
        }


def validation_cutoff(history: Histories, fraction: float) -> datetime:
    """The time ``fraction`` of the history's span before its newest interaction."""
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1, not {fraction}")
    times = [i.at for h in history.values() for i in h]
    if not times:
        raise ValueError("no history to tune on")
    first, last = min(times), max(times)
    return last - (last - first) * fraction


def validation_split(
    history: Histories, cutoff: datetime
) -> tuple[dict[str, list[Interaction]], Split]:
    """Every shopper's history before ``cutoff``, and the split of who bought what new after."""
    before = history_before(history, cutoff)
    catalogue = {i.item_id for h in before.values() for i in h}
    return before, temporal_split(history, cutoff, catalogue)


@dataclass(frozen=True)
class _Shopper:
    components: np.ndarray[Any, np.dtype[np.float64]]
    hits: np.ndarray[Any, np.dtype[np.bool_]]
    ideal: float
    truth: int


def _prepare(scored: Mapping[str, Scored], truth: Mapping[str, frozenset[str]]) -> list[_Shopper]:
    """Each shopper's candidates sorted by item id, so that a stable sort by score breaks ties
    by item id exactly as :meth:`Scored.ranked` does."""
    out = []
    for user, t in truth.items():
        sc = scored.get(user)
        ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(t), 10)))
        if sc is None or not sc.ids:
            out.append(_Shopper(np.zeros((0, len(COMPONENTS))), np.zeros(0, bool), ideal, len(t)))
            continue
        order = sorted(range(len(sc.ids)), key=lambda k: sc.ids[k])
        hits = np.array([sc.ids[k] in t for k in order], dtype=bool)
        out.append(_Shopper(sc.components[order], hits, ideal, len(t)))
    return out


def figures(
    shoppers: Sequence[_Shopper], weights: np.ndarray[Any, np.dtype[np.float64]]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Mean HitRate@10, NDCG@10 and Recall@20 (rows) of each weight vector (columns)."""
    w = np.atleast_2d(weights).T  # components x vectors
    total = np.zeros((3, w.shape[1]))
    discount = 1.0 / np.log2(np.arange(2, 12))
    for sh in shoppers:
        if not len(sh.hits):
            continue
        scores = blended(sh.components, w)
        order = np.argsort(-scores, axis=0, kind="stable")[:20]
        hit = sh.hits[order]  # rank x vectors
        total[0] += hit[:10].any(axis=0)
        total[1] += (hit[:10] * discount[: min(10, len(hit)), None]).sum(axis=0) / sh.ideal
        total[2] += hit[:20].sum(axis=0) / sh.truth
    return total / max(len(shoppers), 1)


def _named(row: np.ndarray[Any, Any]) -> dict[str, float]:
    return {
        "hit_rate@10": round(float(row[0]), 6),
        "ndcg@10": round(float(row[1]), 6),
        "recall@20": round(float(row[2]), 6),
    }


def _candidates(
    rng: random.Random, start: np.ndarray[Any, Any], samples: int
) -> np.ndarray[Any, Any]:
    n = len(COMPONENTS)
    rows = [start, *np.eye(n)]
    rows += [np.array([rng.expovariate(1.0) for _ in range(n)]) for _ in range(samples)]
    return np.array(rows)


def _perturbed(
    rng: random.Random, best: np.ndarray[Any, Any], samples: int
) -> np.ndarray[Any, Any]:
    return np.array([best * np.exp([rng.gauss(0.0, 0.6) for _ in best]) for _ in range(samples)])


def tune(
    s: Settings,
    store: VectorStore,
    history: Histories,
    split: Split,
    cutoff: datetime,
    *,
    samples: int = 200,
    seed: int = 7,
) -> Tuning:
    """The best settings on ``split`` (its shoppers' validation truth) for a store built from
    ``history`` (every shopper's interactions before the validation cutoff)."""
    from recstream_tools.evaluation.harness import retrain, score

    started = time.perf_counter()
    rng = random.Random(seed)
    users = split.users
    given = np.array([getattr(s, _WEIGHT[c]) for c in COMPONENTS], dtype=np.float64)
    best: tuple[float, dict[str, float], np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None
    before: np.ndarray[Any, Any] | None = None
    tried = 0
    for l2_scale in _GRID_SCALES:
        for hl_scale in _GRID_SCALES:
            model = {
                "learned_l2": s.learned_l2 * l2_scale,
                "learned_half_life_hours": s.learned_half_life_hours * hl_scale,
            }
            trial = s.model_copy(update=model)
            retrain(store, history, trial)
            shoppers = _prepare(score(store, trial, split.history, users), split.truth)
            weights = _candidates(rng, given, samples)
            found = figures(shoppers, weights)
            k = int(np.argmax(found[1]))
            weights2 = _perturbed(rng, weights[k], samples // 2)
            found2 = figures(shoppers, weights2)
            k2 = int(np.argmax(found2[1]))
            top_w, top_f = (
                (weights2[k2], found2[:, k2])
                if found2[1, k2] > found[1, k]
                else (weights[k], found[:, k])
            )
            tried += len(weights) + len(weights2)
            if l2_scale == 1.0 and hl_scale == 1.0:
                before = found[:, 0]
            log.info("tune.grid", **model, ndcg10=round(float(top_f[1]), 4))
            if best is None or top_f[1] > best[0]:
                best = (float(top_f[1]), model, top_w, top_f)
    assert best is not None and before is not None
    _, model, w, f = best
    if w.sum() > 0:  # only the settings given can weigh nothing at all
        w = w / w.sum()
    values = {
        **model,
        **{_WEIGHT[c]: round(float(v), 4) for c, v in zip(COMPONENTS, w, strict=True)},
    }
    return Tuning(
        values,
        _named(before),
        _named(f),
        cutoff,
        len(users),
        tried,
        time.perf_counter() - started,
    )


def tune_store(
    settings: Settings, store: VectorStore, fraction: float, samples: int, workers: int
) -> Tuning:
    """``recstream tune``: tune on the histories and items ``store`` holds, store the chosen
    settings there and train the model with them. The last ``fraction`` of the history's span
    is the validation window."""
    import tempfile
    from pathlib import Path

    from recstream_tools.evaluation.harness import build
    from stream.collections import ITEMS
    from stream.ranking.learned import save_tuned, stored_histories, train_from_store
    from stream.store.edge import EdgeStore

    s = settings.model_copy(update={"rank_tuned": False})
    histories = stored_histories(store)
    cutoff = validation_cutoff(histories, fraction)
    before, split = validation_split(histories, cutoff)
    if len(split.users) < MIN_VALIDATION_USERS:
        raise ValueError(
            f"too little history to tune: {len(split.users)} shoppers came back for new items "
            f"after {cutoff.isoformat()} (at least {MIN_VALIDATION_USERS} are needed); keep the "
            "defaults, or tune later"
        )
    items = [p for p in store.scroll(ITEMS, with_vectors=True) if p.vector is not None]
    with tempfile.TemporaryDirectory(prefix="recstream-tune-") as workdir:
        scratch = EdgeStore(Path(workdir))
        try:
            build(scratch, items, before, s, workers)
            tuning = tune(s, scratch, before, split, cutoff, samples=samples)
        finally:
            scratch.close()
    save_tuned(store, tuning.values, tuning.report())
    train_from_store(s.model_copy(update=tuning.values), store)
    return tuning
