"""Choosing the blend's weights and the model's hyperparameters on the shop's own history.

The history is cut at a validation cutoff (the last ``fraction`` of its time span by default):
what came before builds the store (items, statistics, model) and the shoppers' inputs, what came
after is the truth. Nothing at or after the history's own end is read, so an evaluation period
that follows the history is never seen. For each model setting on a small grid, every
validation shopper's candidates and components are computed once by the Recommender; weight
vectors are then tried on them in bulk (the components do not depend on the weights): the
defaults, each component alone, seeded random mixtures, and perturbations of the best.
NDCG@10 decides, and a change must earn its place on shoppers it was not picked on: the
validation shoppers are split in two halves and each half is ranked with the weights picked on
the other (cross-fitting). The weights picked at the given model replace the given ones only
where that unseen-shopper NDCG@10 beats theirs by more than :data:`EVIDENCE_SE` standard errors
of the mean per-shopper gain; then the grid's best other model setting (with the weights the
first step kept: picked, cross-fitted, or the given ones) replaces the given model only where
it clears the bar for the best of eight (2.77 standard errors). The best of thousands of
trials on a few hundred shoppers wins by chance alone: judged on the shoppers it was picked
on, on Online Retail, the grid's choice raised NDCG@10 on the validation window and lowered
it on the period after (bench/README.md).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
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
EVIDENCE_SE = 2.0
"""By how many standard errors a change's mean per-shopper gain in NDCG@10 must be positive."""


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
    decisions: tuple[Decision, ...] = ()
    """Each change considered (weights, then the model), with its evidence."""

    def report(self) -> dict[str, Any]:
        return {
            "validation_cutoff": self.cutoff.isoformat(),
            "validation_users": self.users,
            "before": self.before,
            "after": self.after,
            "decisions": [d.report() for d in self.decisions],
            "tried": self.tried,
            "seconds": round(self.seconds, 1),
        }


@dataclass(frozen=True)
class Decision:
    """Whether a change was taken: its mean per-shopper NDCG@10 gain over what it would
    replace, and that mean's standard error."""

    change: str
    gain: float
    se: float
    taken: bool
    needed: float = EVIDENCE_SE
    """How many standard errors the gain had to clear."""

    def report(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "ndcg@10_gain": round(self.gain, 6),
            "se": round(self.se, 6),
            "needed_se": round(self.needed, 3),
            "taken": self.taken,
        }

    def line(self) -> str:
        verdict = "taken" if self.taken else f"not taken (needs > {self.needed:.2f} SE)"
        return f"{self.change}: NDCG@10 {self.gain:+.4f} +/- {self.se:.4f}, {verdict}"


def decide(
    change: str, new: np.ndarray[Any, Any], old: np.ndarray[Any, Any], among: int = 1
) -> Decision:
    """Take ``change`` when its per-shopper NDCG@10 (``new``, against ``old``, the same
    shoppers in the same order) gains more than :data:`EVIDENCE_SE` standard errors on average
    (a paired comparison: what each shopper gains). ``among``: the change is the best of that
    many, so the bar is the one whose one-sided normal tail is :data:`EVIDENCE_SE`'s divided by
    ``among`` (Bonferroni: 2.77 for the best of 8). A guard against chance rather than an exact
    test: shoppers ranked with one pick do not gain independently of each other."""
    gains = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    n = len(gains)
    mean = float(gains.mean()) if n else 0.0
    se = float(gains.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    normal = NormalDist()
    needed = normal.inv_cdf(1.0 - normal.cdf(-EVIDENCE_SE) / max(1, among))
    return Decision(change, mean, se, bool(mean > 0 and mean > needed * se), needed)


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
    per = by_shopper(shoppers, weights)
    means = per.mean(axis=1) if shoppers else per.sum(axis=1)  # no shopper: zeros
    return np.asarray(means, dtype=np.float64)


def by_shopper(
    shoppers: Sequence[_Shopper], weights: np.ndarray[Any, np.dtype[np.float64]]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Each shopper's HitRate@10, NDCG@10 and Recall@20: metric x shopper x weight vector."""
    w = np.atleast_2d(weights).T  # components x vectors
    out = np.zeros((3, len(shoppers), w.shape[1]))
    discount = 1.0 / np.log2(np.arange(2, 12))
    for n, sh in enumerate(shoppers):
        if not len(sh.hits):
            continue
        scores = blended(sh.components, w)
        order = np.argsort(-scores, axis=0, kind="stable")[:20]
        hit = sh.hits[order]  # rank x vectors
        out[0, n] = hit[:10].any(axis=0)
        out[1, n] = (hit[:10] * discount[: min(10, len(hit)), None]).sum(axis=0) / sh.ideal
        out[2, n] = hit[:20].sum(axis=0) / sh.truth
    return out


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
    """The settings for ``split`` (its shoppers' validation truth), for a store built from
    ``history`` (every shopper's interactions before the validation cutoff).

    The shoppers are split in two halves (alternately, in id order), and each half is ranked
    with the weights picked on the other. The given settings stay unless a change wins on those
    unseen shoppers by more than chance would let it (:func:`decide`): first the weights at the
    given model, then the grid's best other model setting with the weights the first step kept.
    What is taken is the weights picked on every shopper; the figures after are the
    cross-fitted ones where the weights changed (not the picked-on ones)."""
    from recstream_tools.evaluation.harness import retrain, score

    started = time.perf_counter()
    rng = random.Random(seed)
    users = split.users
    truth = {u: split.truth[u] for u in users}  # shoppers in id order: the halves are fixed
    given = np.array([getattr(s, _WEIGHT[c]) for c in COMPONENTS], dtype=np.float64)
    trials: list[_Trial] = []
    at_given = -1
    tried = 0
    for l2_scale in _GRID_SCALES:
        for hl_scale in _GRID_SCALES:
            model = {
                "learned_l2": s.learned_l2 * l2_scale,
                "learned_half_life_hours": s.learned_half_life_hours * hl_scale,
            }
            trial = s.model_copy(update=model)
            retrain(store, history, trial)
            shoppers = _prepare(score(store, trial, split.history, users), truth)
            halves = (shoppers[0::2], shoppers[1::2])
            # each half ranked with the weights picked on the other: what a pick is worth to
            # shoppers it never saw (cross-fitting); the weights kept are picked on everyone
            crossed = np.zeros((3, len(shoppers)))
            for n, (seen, unseen) in enumerate((halves, halves[::-1])):
                w, count = _pick(rng, given, seen, samples)
                crossed[:, 1 - n :: 2] = by_shopper(unseen, w)[:, :, 0]
                tried += count
            w, count = _pick(rng, given, shoppers, samples)
            tried += count
            if l2_scale == 1.0 and hl_scale == 1.0:
                at_given = len(trials)
            plain = by_shopper(shoppers, given)[:, :, 0]
            trials.append(_Trial(model, w, crossed, plain))
            log.info("tune.grid", **model, ndcg10_crossed=round(float(crossed[1].mean()), 4))
    assert at_given >= 0
    # the given settings, unless a change wins on unseen shoppers by more than chance would
    current = trials[at_given]
    before = current.plain.mean(axis=1)
    weights_change = decide("weights", current.crossed[1], current.plain[1])
    tuned = weights_change.taken

    def judged(t: _Trial) -> np.ndarray[Any, Any]:
        """Each shopper's figures with the weights the first step keeps, at ``t``'s model."""
        return t.crossed if tuned else t.plain

    decisions = [weights_change]
    others = [t for k, t in enumerate(trials) if k != at_given]
    if others:
        # the best of several settings: its gain must clear the bar for the best of that many
        other = max(others, key=lambda t: float(judged(t)[1].mean()))
        described = ", ".join(f"{name} {value:g}" for name, value in other.model.items())
        change = decide(f"model ({described})", judged(other)[1], judged(current)[1], len(others))
        if change.taken:
            current = other
        decisions.append(change)
    w = current.weights if tuned else given
    after = judged(current).mean(axis=1)
    if w.sum() > 0:  # only the settings given can weigh nothing at all
        w = w / w.sum()
    values = {
        **current.model,
        **{_WEIGHT[c]: round(float(v), 4) for c, v in zip(COMPONENTS, w, strict=True)},
    }
    for d in decisions:
        log.info("tune.decision", **d.report())
    return Tuning(
        values,
        _named(before),
        _named(after),
        cutoff,
        len(users),
        tried,
        time.perf_counter() - started,
        tuple(decisions),
    )


@dataclass(frozen=True)
class _Trial:
    """One model setting of the grid: the best weights on every shopper, and each shopper's
    HitRate@10, NDCG@10 and Recall@20 (rows) with the weights picked on the other half
    (``crossed``) and with the given weights (``plain``)."""

    model: dict[str, float]
    weights: np.ndarray[Any, Any]
    crossed: np.ndarray[Any, Any]
    plain: np.ndarray[Any, Any]


def _pick(
    rng: random.Random, given: np.ndarray[Any, Any], shoppers: Sequence[_Shopper], samples: int
) -> tuple[np.ndarray[Any, Any], int]:
    """The best weights for ``shoppers`` by NDCG@10 (the given ones, each component alone,
    random mixtures, then perturbations of the best), and how many were tried."""
    weights = _candidates(rng, given, samples)
    found = figures(shoppers, weights)
    k = int(np.argmax(found[1]))
    weights2 = _perturbed(rng, weights[k], samples // 2)
    found2 = figures(shoppers, weights2)
    k2 = int(np.argmax(found2[1]))
    best = weights2[k2] if found2[1, k2] > found[1, k] else weights[k]
    return best, len(weights) + len(weights2)


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
