"""Similar-item lists against what shoppers bought together later (Online Retail).

For each item bought in an order with another item from the cutoff on (the test period, or a
window before it that ends at ``until``: a validation window; orders as
:func:`recstream_tools.training.pairs.orders` reads them: one shopper, one time, 2 to
:data:`~recstream_tools.training.pairs.MAX_ORDER_ITEMS` items), over the whole catalogue of
the items' texts:

- **HitRate@10**: is one of the items bought with it in the test period among its 10 most
  similar items?
- **Precision@10**: the share of its 10 most similar items bought with it in the test period.

Nothing of the test period is used to build the lists; a model fine-tuned for this measure
must be trained on pairs from before the cutoff only (``recstream train encoder --co-purchase
N --before CUTOFF``), which is what makes the comparison fair.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from encoders import Encoder
from recstream_tools.evaluation.neighbours import rank_all
from recstream_tools.evaluation.online_retail import online_retail_dataset
from recstream_tools.training.pairs import orders
from schemas.catalog import Item
from stream.ranking.profile import Interaction

AT = 10
DATA_FILE = "online_retail.csv.gz"


def later_partners(
    histories: Mapping[str, Sequence[Interaction]],
    cutoff: datetime,
    known: set[str],
    until: datetime | None = None,
) -> dict[str, set[str]]:
    """Per item of ``known``, the other items of ``known`` bought in one order with it at or
    after ``cutoff`` (and before ``until``, when given)."""
    partners: dict[str, set[str]] = defaultdict(set)

    def keep(interaction: Interaction) -> bool:
        at = interaction.at
        return cutoff <= at and (until is None or at < until) and interaction.item_id in known

    for order in orders(histories, keep):
        for item_id in order:
            partners[item_id] |= order - {item_id}
    return dict(partners)


def hits(ranked: Sequence[Sequence[int]], truth: Sequence[set[int]], k: int) -> tuple[float, float]:
    """HitRate@k and Precision@k of ``ranked`` rows against each query's true rows."""
    if not truth:
        return 0.0, 0.0
    found = [len(true & set(rows[:k])) for rows, true in zip(ranked, truth, strict=True)]
    return sum(1 for n in found if n) / len(truth), sum(found) / (k * len(truth))


def co_purchase_quality(
    path: Path, encoder: Encoder | None, cutoff: datetime, until: datetime | None = None
) -> dict[str, Any]:
    """Every method's HitRate@10 and Precision@10 on the co-purchases from ``cutoff`` on (the
    test period), or from ``cutoff`` to ``until``: a validation window before the test period,
    to choose a fine-tune's recipe on (trained on pairs from before ``cutoff``)."""
    data = online_retail_dataset(path)
    items: list[Item] = []
    for item_id, row in sorted(data.items.items()):
        try:
            items.append(Item(item_id=item_id, title=row.title))
        except ValidationError:
            continue  # a description the consumers would dead-letter
    row_of = {item.item_id: row for row, item in enumerate(items)}
    partners = later_partners(data.interactions, cutoff, set(row_of), until)
    queries = sorted(partners, key=row_of.__getitem__)
    ranked = rank_all(items, items, encoder, AT, same_items=True)
    truth = [{row_of[p] for p in partners[q]} for q in queries]
    methods = {}
    for method, lists in ranked.lists.items():
        hit_rate, precision = hits([lists[row_of[q]] for q in queries], truth, AT)
        methods[method] = {f"HR@{AT}": round(hit_rate, 4), f"P@{AT}": round(precision, 4)}
    return {
        "cutoff": cutoff.isoformat(),
        "until": until.isoformat() if until is not None else None,
        "items": len(items),
        "queries": len(queries),
        "methods": methods,
    }
