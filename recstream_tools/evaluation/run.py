"""``recstream eval recommendations``: a temporal-split evaluation on the Online Retail data or on
a shop's own interactions and items files.

Every shopper with interactions both before the cutoff and with items new to them from the cutoff
on is evaluated: the truth is those new items. recstream's lists come from the consumers' own
code over a store built from the history (:mod:`~recstream_tools.evaluation.harness`): with the
settings given ("recstream"), with the settings :func:`~recstream_tools.evaluation.tune.tune`
chose on a validation window cut from the history ("recstream_tuned"), and as its
popularity-only and co-occurrence-only blends. The baselines
(:mod:`~recstream_tools.evaluation.baselines`) choose their hyperparameter on the same
validation window. Nothing from the cutoff on is used by any method.
"""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from encoders import load_encoder
from recstream_tools.evaluation.baselines import BASELINES, choose
from recstream_tools.evaluation.harness import build, item_points, recommend, retrain
from recstream_tools.evaluation.interactions import Dataset
from recstream_tools.evaluation.metrics import Metric, hit_rate, mean_over_users, ndcg, recall
from recstream_tools.evaluation.split import history_before, temporal_split
from recstream_tools.evaluation.tune import Decision, tune, validation_cutoff, validation_split
from stream.ranking.blend import COMPONENTS, Weights
from stream.settings import Settings
from stream.store.edge import EdgeStore

log = structlog.get_logger(__name__)

RESULT_FILE = "recommendations-eval.json"
LIST_LENGTH = 20
SAMPLE_SEED = 20111001
VALIDATION_FRACTION = 0.1
# every earlier purchase is excluded (about 100 years): the truth holds only new items
EXCLUDE_ALL_DAYS = 36_500.0

_ONLY = {
    name: {f"rank_weight_{c}": float(c == name) for c in COMPONENTS}
    for name in ("popularity", "collaborative")
}
BLENDS: dict[str, dict[str, float]] = {
    "recstream": {},  # the settings' own weights
    "popular": _ONLY["popularity"],
    "cooccurrence": _ONLY["collaborative"],
}
METHODS = (*BLENDS, "recstream_tuned", *BASELINES)
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
    "learned_half_life_hours",
    "learned_l2",
    "learned_neighbours",
    "learned_dense_max_items",
    "max_seq_length",
)


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
    data: Dataset,
    cutoff: datetime,
    max_users: int | None = None,
    out_dir: str | Path | None = None,
    workers: int | None = None,
    samples: int = 200,
) -> dict[str, Any]:
    """Hit rate, NDCG and recall of each method's lists on the interactions from ``cutoff`` on.

    The catalogue is what shoppers touched before the cutoff (what the shop knew then);
    ``max_users`` draws a fixed-seed sample of the evaluated shoppers (tuning and validation
    use every shopper of the validation window); ``workers`` (default: one per CPU) fold the
    item statistics. The result is also written to ``<out_dir>/recommendations-eval.json``.
    """
    started = time.perf_counter()
    load_before = os.getloadavg()
    timer = _Timer()
    workers = max(1, workers if workers is not None else os.cpu_count() or 1)
    s = settings.model_copy(
        update={
            "recommendations_n": LIST_LENGTH,
            "rank_exclude_purchased_days": EXCLUDE_ALL_DAYS,
            "rank_tuned": False,
        }
    )
    history = history_before(data.interactions, cutoff)
    catalogue = sorted({i.item_id for p in history.values() for i in p})
    split = temporal_split(data.interactions, cutoff, catalogue)
    users = split.users
    if max_users is not None and max_users < len(users):
        users = sorted(random.Random(SAMPLE_SEED).sample(users, max_users))
    log.info("eval.split", customers=len(history), items=len(catalogue), users=len(users))
    if not users:
        raise ValueError(f"no shopper interacted both before and from {cutoff.isoformat()}")
    val_cutoff = validation_cutoff(history, VALIDATION_FRACTION)
    val_history, val_split = validation_split(history, val_cutoff)
    if not val_split.users:
        raise ValueError(f"no shopper to validate on before {cutoff.isoformat()}")
    val_catalogue = sorted({i.item_id for p in val_history.values() for i in p})

    lists: dict[str, dict[str, list[str]]] = {}
    with timer.phase("encode"):
        encoder = load_encoder(s)
        texts = [data.items[k].title for k in catalogue]
        vectors = dict(zip(catalogue, encoder.encode(texts), strict=True))
    items = item_points([data.items[k] for k in catalogue], vectors, encoder.name)
    with tempfile.TemporaryDirectory(prefix="recstream-eval-") as workdir:
        test_store = EdgeStore(Path(workdir) / "test")
        val_store = EdgeStore(Path(workdir) / "validation")
        try:
            with timer.phase("build_test_store"):
                activities, model = build(test_store, items, history, s, workers)
            with timer.phase("recommend"):
                for name, update in BLENDS.items():
                    lists[name] = recommend(test_store, s.model_copy(update=update), history, users)
            with timer.phase("build_validation_store"):
                known = set(val_catalogue)
                build(val_store, [p for p in items if p.key in known], val_history, s, workers)
            with timer.phase("tune"):
                tuning = tune(s, val_store, val_history, val_split, val_cutoff, samples=samples)
                tuned = s.model_copy(update=tuning.values)
                retrain(test_store, history, tuned)
                lists["recstream_tuned"] = recommend(test_store, tuned, history, users)
        finally:
            test_store.close()
            val_store.close()

    chosen: dict[str, Any] = {}
    for name, (baseline, values) in BASELINES.items():
        if name.startswith("ease") and len(catalogue) > s.learned_dense_max_items:
            log.info("eval.skipped", baseline=name, items=len(catalogue))
            continue
        with timer.phase(name):
            value, validation = choose(baseline, values, val_history, val_split.truth, LIST_LENGTH)
            lists[name] = baseline(history, users, LIST_LENGTH, value)
        chosen[name] = {"value": value, "validation_ndcg@10": validation}

    truth = {u: split.truth[u] for u in users}
    figures = {
        method: {
            name: round(mean_over_users(metric, ranked, truth, k), 6)
            for name, (metric, k) in METRICS.items()
        }
        for method, ranked in lists.items()
    }
    for method, f in figures.items():
        log.info("eval.method", method=method, users=len(users), **f)
    result = {
        "dataset": data.name,
        "cutoff": cutoff.isoformat(),
        "validation_cutoff": val_cutoff.isoformat(),
        "methods": figures,
        "users": len(users),
        "eligible_users": len(split.truth),
        "customers_with_history": len(history),
        "items": len(catalogue),
        "history_interactions": sum(len(p) for p in history.values()),
        "item_activities": activities,
        "model": {"kind": model.kind, "items": model.items, "interactions": model.interactions},
        "rejected_rows": {
            k: {"count": r.count, "first": r.first} for k, r in data.rejected.items()
        },
        "max_users": max_users,
        "sample_seed": SAMPLE_SEED,
        "weights": {
            "recstream": _weights(s),
            "recstream_tuned": _weights(tuned),
            **{m: _weights(s.model_copy(update=w)) for m, w in BLENDS.items() if w},
        },
        "tuning": {"values": tuning.values, **tuning.report()},
        "baselines": chosen,
        "settings": {name: getattr(s, name) for name in _RANKING_SETTINGS},
        "encoder": encoder.name,
        "device": encoder.device,
        "workers": workers,
        "timings_s": {**timer.seconds, "total": round(time.perf_counter() - started, 3)},
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
    header = f"{'method':<16}{'HitRate@10':>12}{'NDCG@10':>10}{'Recall@20':>11}{'users':>8}"
    lines = [
        f"recommendations on {result['dataset']}, cutoff {result['cutoff']}: "
        f"{result['users']} users, {result['items']} items, "
        f"{result['history_interactions']} interactions before the cutoff",
        header,
        "-" * len(header),
    ]
    for method, f in result["methods"].items():
        lines.append(
            f"{method:<16}{f['hit_rate@10']:>12.4f}{f['ndcg@10']:>10.4f}"
            f"{f['recall@20']:>11.4f}{result['users']:>8}"
        )
    for name in ("recstream", "recstream_tuned"):
        weights = ", ".join(f"{k} {v:g}" for k, v in result["weights"][name].items())
        lines.append(f"{name} weights: {weights}")
    lines.append(
        f"tuned on {result['tuning']['validation_users']} shoppers after "
        f"{result['validation_cutoff']}; model {result['encoder']} on {result['device']}; "
        f"{result['timings_s']['total']:.1f} s"
    )
    for d in result["tuning"].get("decisions", ()):
        decision = Decision(d["change"], d["ndcg@10_gain"], d["se"], d["taken"], d["needed_se"])
        lines.append(f"  {decision.line()}")
    return "\n".join(lines)


def _weights(s: Settings) -> dict[str, float]:
    weights = Weights.from_settings(s)
    return {name: getattr(weights, name) for name in COMPONENTS}
