"""The tuner changes the given settings only on evidence from shoppers its choice never saw:
the rule alone against an independent standard error, and the tuner on a real embedded store
whose validation truth no ordering of the candidates can predict (it keeps what it was given,
where judging a pick on the shoppers it was picked on would not) or one component predicts (it
takes that change)."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from shoppers import T0, THEMES, histories

from encoders import Encoder
from recstream_tools.evaluation.harness import build, item_points, score
from recstream_tools.evaluation.interactions import Item
from recstream_tools.evaluation.split import Split
from recstream_tools.evaluation.tune import EVIDENCE_SE, decide, tune
from stream.ranking.blend import COMPONENTS
from stream.settings import Settings
from stream.store.edge import EdgeStore


def gains_with(mean: float, sd: float, n: int = 101) -> np.ndarray:
    """``n`` gains whose mean and sample standard deviation are exactly these."""
    z = np.random.default_rng(5).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


@pytest.mark.parametrize(
    ("ses", "taken"), [(-3.0, False), (0.0, False), (1.5, False), (1.99, False), (2.01, True)]
)
def test_a_change_is_taken_past_two_standard_errors(ses: float, taken: bool) -> None:
    """The gain's standard error as scipy computes it; the change is taken only when the mean
    gain exceeds EVIDENCE_SE of them."""
    sd = 0.05
    gains = gains_with(ses * sd / np.sqrt(101), sd)
    se = float(stats.sem(gains))
    assert EVIDENCE_SE == 2.0
    got = decide("w", gains, np.zeros_like(gains))
    assert got.taken is taken
    assert got.gain == pytest.approx(gains.mean(), abs=1e-15)
    assert got.se == pytest.approx(se, rel=1e-12)
    # the same gains as differences of two figures per shopper
    base = np.random.default_rng(1).random(len(gains))
    assert decide("w", base + gains, base).taken is taken


def test_the_best_of_several_must_clear_a_higher_bar() -> None:
    """The best of 8 settings clears the bar whose one-sided normal tail is two standard
    errors' divided by 8 (scipy's normal quantile: 2.77): 2.5 SE is taken alone, not as the
    best of 8; 2.9 SE is taken either way."""
    needed = float(stats.norm.ppf(1 - stats.norm.cdf(-EVIDENCE_SE) / 8))
    sd = 0.05
    for ses, alone, of_eight in ((2.5, True, False), (2.9, True, True)):
        gains = gains_with(ses * sd / np.sqrt(101), sd)
        assert decide("m", gains, np.zeros_like(gains)).taken is alone
        best = decide("m", gains, np.zeros_like(gains), among=8)
        assert best.taken is of_eight
        assert best.needed == pytest.approx(needed, rel=1e-9)


def test_a_sure_gain_with_no_spread_is_taken_and_no_gain_is_not() -> None:
    assert decide("w", np.full(30, 0.2), np.full(30, 0.1)).taken
    assert not decide("w", np.full(30, 0.1), np.full(30, 0.1)).taken
    assert not decide("w", np.array([0.5]), np.array([0.0])).taken  # one shopper proves nothing


VALIDATION_AT = T0 + timedelta(days=80)


def setup(
    path: Path, encoder: Encoder, settings: Settings
) -> tuple[EdgeStore, dict[str, list], list[str]]:
    shoppers = histories(240, seed=9)
    before = {u: [i for i in h if i.at < VALIDATION_AT] for u, h in shoppers.items()}
    before = {u: h for u, h in before.items() if h}
    ids = [f"{t}-{n}" for t in THEMES for n in range(10)]
    vectors = encoder.encode([f"{i.split('-')[0]} item number {i.split('-')[1]}" for i in ids])
    by_id = dict(zip(ids, vectors, strict=True))
    items = item_points([Item(k, k, 10.0) for k in ids], by_id, encoder.name)
    store = EdgeStore(path)
    build(store, items, before, settings, 1)
    return store, before, ids


def given_values(s: Settings) -> dict[str, float]:
    total = sum(getattr(s, f"rank_weight_{c}") for c in COMPONENTS)
    return {
        "learned_l2": s.learned_l2,
        "learned_half_life_hours": s.learned_half_life_hours,
        **{
            f"rank_weight_{c}": round(getattr(s, f"rank_weight_{c}") / total, 4) for c in COMPONENTS
        },
    }


def test_the_tuner_keeps_the_given_settings_when_the_truth_is_noise(
    tmp_path: Path, encoder: Encoder
) -> None:
    """40 validation shoppers whose truth is two of their own candidates (the given settings')
    drawn at random: every order of a shopper's candidates has the same expected NDCG, so what
    any weights gain is chance. Judged on the shoppers they were picked on, the weights picked
    here gain 2.27 standard errors and would be taken (checked by replacing the crossed figures
    with the picked-on ones: this test then fails); judged on shoppers the pick never saw, no
    change wins, and the given settings are what the tuner returns."""
    s = Settings(rank_exclude_purchased_days=36_500.0, rank_tuned=False)
    store, before, _ = setup(tmp_path / "store", encoder, s)
    try:
        scored = score(store, s, before, sorted(before))
        rng = random.Random(15)
        users = [u for u in sorted(before) if len(scored[u].ids) >= 2][:40]
        truth = {u: frozenset(rng.sample(sorted(scored[u].ids), 2)) for u in users}
        split = Split({u: before[u] for u in truth}, truth)
        tuning = tune(s, store, before, split, VALIDATION_AT, samples=40)
    finally:
        store.close()
    assert [d.change.split(" ")[0] for d in tuning.decisions] == ["weights", "model"]
    assert not any(d.taken for d in tuning.decisions), tuning.decisions
    assert tuning.values == given_values(s)
    assert tuning.after == tuning.before


def test_the_tuner_takes_a_change_the_other_half_confirms(tmp_path: Path, encoder: Encoder) -> None:
    """Each validation shopper's truth is the candidate the popularity component alone puts
    first: that weight vector (one of those tried) ranks it first for every shopper, the
    given blend often does not; the change is taken and it puts popularity first."""
    s = Settings(rank_exclude_purchased_days=36_500.0, rank_tuned=False)
    store, before, _ = setup(tmp_path / "store", encoder, s)
    try:
        users = sorted(before)
        scored = score(store, s, before, users)
        popularity = COMPONENTS.index("popularity")
        truth = {}
        for u, sc in scored.items():
            if sc.ids:
                # popularity alone: the largest first, ties by item id (as Scored.ranked)
                first = min(zip(-sc.components[:, popularity], sc.ids, strict=True))
                truth[u] = frozenset({first[1]})
        split = Split({u: before[u] for u in truth}, truth)
        tuning = tune(s, store, before, split, VALIDATION_AT, samples=40)
    finally:
        store.close()
    weights = tuning.decisions[0]
    assert weights.taken and weights.gain > EVIDENCE_SE * weights.se, tuning.decisions
    chosen = {c: tuning.values[f"rank_weight_{c}"] for c in COMPONENTS}
    assert max(chosen, key=chosen.__getitem__) == "popularity", chosen
    assert tuning.after["ndcg@10"] > tuning.before["ndcg@10"]
