"""The UCI Online Retail invoices as a catalogue and per-customer purchase histories.

Only product purchases are kept: cancellations, returns, free lines, lines without a customer
and the retailer's non-product codes (postage, fees, manual adjustments, vouchers) are dropped.
"""

from __future__ import annotations

import csv
import gzip
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from recstream_tools.evaluation.interactions import Dataset, Item, Rejected
from stream.ranking.profile import PURCHASE, Interaction

NON_PRODUCT_CODES = frozenset({"C2"})
"""Codes with a digit that are still not products: C2 is carriage. Codes without any digit
(POST, DOT, M, D, S, B, BANK CHARGES, AMAZONFEE, CRUK, PADS ...) are charges, fees, discounts or
adjustments; the rule also drops two real products, DCGSSBOY and DCGSSGIRL (24 lines)."""

NON_PRODUCT_PREFIXES = ("gift_",)
"""Gift vouchers (``gift_0001_20`` ...): money, not merchandise."""

_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class RetailData:
    items: dict[str, Item]
    purchases: dict[str, list[Interaction]]
    """Per customer id, sorted by ``(at, event_id)``."""
    rows_read: int
    rows_kept: int

    @property
    def purchase_count(self) -> int:
        return sum(len(p) for p in self.purchases.values())


def is_product(stock_code: str) -> bool:
    """Whether a StockCode names merchandise rather than a charge, fee or voucher."""
    code = stock_code.strip()
    return (
        bool(_DIGIT.search(code))
        and code not in NON_PRODUCT_CODES
        and not code.startswith(NON_PRODUCT_PREFIXES)
    )


@dataclass(frozen=True)
class _Line:
    line: int
    invoice: str
    code: str
    description: str
    quantity: int
    at: datetime
    price: float
    customer: str


_COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice")
_CUSTOMER = "CustomerID"


def _rows(path: Path, max_rows: int | None) -> Iterator[_Line | None]:
    """Every data row, as the purchase it is or None; at most ``max_rows`` of them."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [c for c in (*_COLUMNS, _CUSTOMER) if c not in header]
        if missing:
            raise ValueError(f"{path} is not the Online Retail CSV: no column {missing[0]}")
        at = [header.index(c) for c in (*_COLUMNS, _CUSTOMER)]
        for n, row in enumerate(reader, start=2):  # line 1 is the header
            if max_rows is not None and n - 1 > max_rows:
                return
            yield _purchase(n, *(row[k] for k in at))


def _purchase(
    n: int, invoice: str, code: str, desc: str, qty: str, date: str, price: str, customer: str
) -> _Line | None:
    invoice, code, customer = invoice.strip(), code.strip(), customer.strip()
    if invoice.startswith("C") or not customer or not is_product(code):
        return None
    try:
        quantity, unit_price = int(qty), float(price)
        # "2010-12-01 08:26:00": the shop's clock, taken as UTC
        when = datetime.fromisoformat(date).replace(tzinfo=UTC)
    except ValueError:
        return None
    if quantity <= 0 or not unit_price > 0:
        return None
    # "17850.0": the float formatting of an integer id
    user = customer.removesuffix(".0")
    return _Line(n, invoice, code, desc.strip(), quantity, when, unit_price, user)


def load_online_retail(path: str | Path, max_rows: int | None = None) -> RetailData:
    """Items (most common title, median price) and each customer's purchases, in time order."""
    titles: dict[str, Counter[str]] = defaultdict(Counter)
    prices: dict[str, list[float]] = defaultdict(list)
    purchases: dict[str, list[Interaction]] = defaultdict(list)
    rows = kept = 0
    for line in _rows(Path(path), max_rows):
        rows += 1
        if line is None:
            continue
        kept += 1
        if line.description:
            titles[line.code][line.description] += 1
        prices[line.code].append(line.price)
        # zero-padded line number: within one invoice (one timestamp) the file order is kept
        event_id = f"{line.invoice}/{line.line:07d}/{line.code}"
        purchases[line.customer].append(
            Interaction(event_id, line.code, PURCHASE, line.at, line.quantity, line.price)
        )
    items = {
        code: Item(
            code,
            titles[code].most_common(1)[0][0] if titles[code] else code,
            statistics.median(p),
        )
        for code, p in prices.items()
    }
    for history in purchases.values():
        history.sort(key=lambda i: (i.at, i.event_id))
    return RetailData(items, dict(purchases), rows, kept)


def online_retail_dataset(path: str | Path, max_rows: int | None = None) -> Dataset:
    """The Online Retail purchases and items as a :class:`Dataset`."""
    data = load_online_retail(path, max_rows)
    skipped = Rejected(count=data.rows_read - data.rows_kept)
    return Dataset("online_retail", data.items, data.purchases, {"interactions": skipped})
