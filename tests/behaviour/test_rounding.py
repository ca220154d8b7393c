"""The recommendations' numbers, rounded to 6 places a vector at a time, are Python's round,
and the published value is the model's message."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.behaviour.processor import recommendations_message, recommendations_value, rounded_6
from stream.ranking.blend import Ranked

# near a half at the 7th place, where a product's rounding could pick the other integer
halves = st.builds(
    lambda n, e: n / 1e6 + 5e-7 + e, st.integers(-(10**9), 10**9), st.floats(-1e-15, 1e-15)
)


@settings(max_examples=500)
@given(st.lists(st.floats(allow_nan=False) | st.floats(-2, 2) | halves, max_size=40))
def test_rounded_6_is_pythons_round(values: list[float]) -> None:
    got = rounded_6(values)
    want = [round(v, 6) for v in values]
    assert [math.copysign(1, g) for g in got] == [math.copysign(1, w) for w in want]
    assert got == want


def test_rounded_6_at_the_edges() -> None:
    values = [0.0, -0.0, 0.0000005, 0.0000015, 2.675, 1e-7, -4e-7, 999.9999995, 1e300, math.inf]
    assert rounded_6(values) == [round(v, 6) for v in values]
    assert math.isnan(rounded_6([math.nan])[0])


def test_a_published_list_is_the_models_message_with_numbers_rounded_by_python() -> None:
    """The value the behaviour consumer publishes parses to the model's message, whose numbers
    are Python's round(v, 6) of the ranked scores and components."""
    at = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    ranked = [
        Ranked(f"sku-{n}", 1 / (n + 3), {"semantic": n / 7, "popularity": 0.0000005 + n / 1e6})
        for n in range(20)
    ]
    published = json.loads(recommendations_value("u-1", ranked, at))
    assert published == json.loads(recommendations_message("u-1", ranked, at).to_json_bytes())
    assert published["items"] == [
        {
            "item_id": r.item_id,
            "score": round(r.score, 6),
            "components": {k: round(v, 6) for k, v in r.components.items()},
        }
        for r in ranked
    ]
