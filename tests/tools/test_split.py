"""From invoice lines to an evaluation split: which lines are product purchases, how items are
described, and the temporal split into each shopper's history and new items after a cutoff."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recstream_tools.evaluation.online_retail import is_product, load_online_retail
from recstream_tools.evaluation.split import history_before, temporal_split
from stream.ranking.profile import Interaction

CUTOFF = datetime(2011, 10, 1, tzinfo=UTC)


def buy(event_id: str, item_id: str, days: float) -> Interaction:
    """A purchase ``days`` after the cutoff (negative: before it)."""
    return Interaction(event_id, item_id, "purchase", CUTOFF + timedelta(days=days))


def test_truth_holds_only_items_new_to_the_shopper() -> None:
    """Items bought again after the cutoff are not truth; history is everything before it."""
    purchases = {"u1": [buy("1", "a", -3), buy("2", "b", -1), buy("3", "a", 1), buy("4", "c", 2)]}
    split = temporal_split(purchases, CUTOFF, {"a", "b", "c"})
    assert split.truth == {"u1": frozenset({"c"})}
    assert [i.event_id for i in split.history["u1"]] == ["1", "2"]


def test_a_purchase_at_the_cutoff_is_truth() -> None:
    """The cutoff instant belongs to the future: history is strictly before it."""
    split = temporal_split({"u1": [buy("1", "a", -1), buy("2", "b", 0)]}, CUTOFF, {"a", "b"})
    assert split.truth == {"u1": frozenset({"b"})}
    assert [i.item_id for i in split.history["u1"]] == ["a"]


def test_shoppers_without_history_or_new_catalogue_items_are_not_evaluated() -> None:
    """No history, nothing after the cutoff, or only items outside the catalogue: left out."""
    purchases = {
        "newcomer": [buy("1", "a", 1)],
        "gone": [buy("2", "a", -1)],
        "repeat": [buy("3", "a", -1), buy("4", "a", 1)],
        "unknown": [buy("5", "a", -1), buy("6", "z", 1)],
        "kept": [buy("7", "a", -1), buy("8", "z", 1), buy("9", "b", 2)],
    }
    split = temporal_split(purchases, CUTOFF, {"a", "b"})
    assert split.users == ["kept"]
    assert split.truth["kept"] == frozenset({"b"})


def test_history_before_drops_shoppers_with_nothing_before_the_cutoff() -> None:
    """Every shopper with a purchase before the cutoff, and only those purchases."""
    purchases = {"u1": [buy("1", "a", -1), buy("2", "b", 1)], "u2": [buy("3", "a", 1)]}
    assert {u: [i.item_id for i in p] for u, p in history_before(purchases, CUTOFF).items()} == {
        "u1": ["a"]
    }


@pytest.mark.parametrize(
    ("code", "product"),
    [
        ("85123A", True),
        ("22423", True),
        ("DCGS0003", True),
        ("POST", False),
        ("BANK CHARGES", False),
        ("M", False),
        ("C2", False),
        ("gift_0001_20", False),
    ],
)
def test_non_product_stock_codes(code: str, product: bool) -> None:
    """Postage, fees, manual lines, carriage and vouchers are not products."""
    assert is_product(code) is product


HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
ROWS = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,UK",
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0,UK",
    "536366,85123A, WHITE HANGING HEART T-LIGHT HOLDER ,2,2010-12-02 09:00:00,2.95,13047.0,UK",
    "536367,85123A,HEART HOLDER,1,2010-12-03 09:00:00,3.25,13047.0,UK",
    "C536368,71053,WHITE METAL LANTERN,-1,2010-12-03 10:00:00,3.39,17850.0,UK",
    "536369,71053,WHITE METAL LANTERN,-2,2010-12-03 10:00:00,3.39,17850.0,UK",
    "536370,71053,WHITE METAL LANTERN,1,2010-12-03 10:00:00,0.0,17850.0,UK",
    "536371,71053,WHITE METAL LANTERN,1,2010-12-03 10:00:00,3.39,,UK",
    "536372,POST,POSTAGE,1,2010-12-03 10:00:00,18.0,17850.0,UK",
]


@pytest.fixture
def retail_file(tmp_path: Path) -> Path:
    path = tmp_path / "retail.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(HEADER + "\n".join(ROWS) + "\n")
    return path


def test_loader_keeps_only_product_purchases_by_known_customers(retail_file: Path) -> None:
    """Cancellations, returns, free lines, no customer and postage are dropped."""
    data = load_online_retail(retail_file)
    assert (data.rows_read, data.rows_kept) == (9, 4)
    assert sorted(data.purchases) == ["13047", "17850"]
    assert [i.item_id for i in data.purchases["17850"]] == ["85123A", "71053"]
    first = data.purchases["17850"][0]
    assert first.type == "purchase"
    assert first.at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert (first.quantity, first.price) == (6, 2.55)
    assert len({i.event_id for p in data.purchases.values() for i in p}) == 4


def test_loader_describes_items_by_common_title_and_median_price(retail_file: Path) -> None:
    """Title: the most common (stripped) description; price: the median unit price."""
    data = load_online_retail(retail_file)
    item = data.items["85123A"]
    assert item.title == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert item.price == 2.95
    assert set(data.items) == {"85123A", "71053"}


def test_loader_stops_after_max_rows(retail_file: Path) -> None:
    """``max_rows`` counts data rows read, kept or not."""
    data = load_online_retail(retail_file, max_rows=2)
    assert (data.rows_read, data.rows_kept) == (2, 2)
