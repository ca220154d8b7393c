"""Training pairs for the encoder, as the texts the consumers embed: pure, no torch.

Sources:

- a pairs file (CSV with a header, or JSON lines): ``text_a, text_b`` (two texts), or
  ``item_a, item_b`` (two item ids of the items file);
- an items file (``item_id, title`` and optionally ``description``, ``brand``, ``category``: a
  path ``A > B > C``, or a list in JSON lines): each item's text is
  :func:`encoders.text.item_text`, and items of the same category can be paired;
- co-purchases: items bought together (one shopper, one time) in an interactions file of
  ``recstream eval recommendations``'s format, or in the Online Retail invoices;
- the Abt-Buy training split (:func:`recstream_tools.evaluation.catalogues.split_pairs`).

A row that cannot be read is skipped and counted (first reasons kept), as in
:mod:`recstream_tools.evaluation.interactions`.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from encoders.text import item_text
from recstream_tools.evaluation.catalogues import AbtBuy
from recstream_tools.evaluation.interactions import Rejected, _rows
from schemas.catalog import Item
from stream.ranking.profile import Interaction

MIN_CO_PURCHASES = 2
"""A pair bought together once may be chance; twice is a signal."""
MAX_ORDER_ITEMS = 50
CO_PURCHASES_PER_TEXT = 20
"""Co-purchase pairs a text may be in (20,000 pairs over Online Retail's ~2,800 paired texts are
~14 a text). Not tuned: the validation runs (Online Retail orders of the two months before the
evaluated period, bench/README.md) compared it with 40 and with raw counts."""
MIN_TRAIN_PAIRS = 16
"""Fewer training pairs than this are refused: in-batch negatives need full batches, and a
handful of pairs teaches the model nothing it keeps."""


@dataclass(frozen=True)
class Pair:
    text_a: str
    text_b: str


def _field(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return "" if value is None else str(value).strip()


def _categories(value: object) -> list[str]:
    if isinstance(value, list):
        return [str(c).strip() for c in value if str(c).strip()]
    text = "" if value is None else str(value)
    return [c.strip() for c in text.split(">") if c.strip()]


def load_items(path: Path) -> tuple[dict[str, Item], Rejected]:
    """Items by id, validated as the consumers validate ``item.created``."""
    items: dict[str, Item] = {}
    rejected = Rejected()
    for n, row in _rows(path):
        if "__error__" in row:
            rejected.add(n, row["__error__"])
            continue
        try:
            item = Item(
                item_id=_field(row, "item_id"),
                title=_field(row, "title"),
                description=_field(row, "description") or None,
                brand=_field(row, "brand") or None,
                categories=_categories(row.get("category")),
            )
        except ValidationError as exc:
            problem = exc.errors()[0]
            rejected.add(n, f"{'.'.join(map(str, problem['loc']))}: {problem['msg']}")
            continue
        items[item.item_id] = item
    return items, rejected


def load_pairs(path: Path, items: dict[str, Item] | None) -> tuple[list[Pair], Rejected]:
    """The pairs of a pairs file; ``items`` resolves ``item_a, item_b`` rows."""
    pairs: list[Pair] = []
    rejected = Rejected()
    for n, row in _rows(path):
        if "__error__" in row:
            rejected.add(n, row["__error__"])
        elif _field(row, "text_a") and _field(row, "text_b"):
            pairs.append(Pair(_field(row, "text_a"), _field(row, "text_b")))
        elif _field(row, "item_a") and _field(row, "item_b"):
            if items is None:
                rejected.add(n, "item_a, item_b need an items file (--items)")
                continue
            a, b = items.get(_field(row, "item_a")), items.get(_field(row, "item_b"))
            if a is None or b is None:
                missing = _field(row, "item_a") if a is None else _field(row, "item_b")
                rejected.add(n, f"no item {missing!r} in the items file")
                continue
            pairs.append(Pair(item_text(a), item_text(b)))
        else:
            rejected.add(n, "needs text_a and text_b, or item_a and item_b")
    return pairs, rejected


def category_pairs(items: Iterable[Item], limit: int, seed: int) -> list[Pair]:
    """Up to ``limit`` pairs of items with the same category path, spread over the categories:
    each category's items are shuffled and paired in turn, one pair per category per round."""
    groups: dict[tuple[str, ...], list[Item]] = defaultdict(list)
    for item in items:
        if item.categories:
            groups[tuple(item.categories)].append(item)
    rng = random.Random(seed)
    queues: list[Iterator[tuple[Item, Item]]] = []
    for key in sorted(groups):
        members = groups[key]
        if len(members) >= 2:
            rng.shuffle(members)
            queues.append(zip(members[0::2], members[1::2], strict=False))
    pairs: list[Pair] = []
    while queues and len(pairs) < limit:
        for queue in list(queues):
            pair = next(queue, None)
            if pair is None:
                queues.remove(queue)
            elif len(pairs) < limit:
                pairs.append(Pair(item_text(pair[0]), item_text(pair[1])))
    return pairs


def orders(
    histories: Mapping[str, Sequence[Interaction]], keep: Callable[[Interaction], bool]
) -> Iterator[set[str]]:
    """Each order of 2 to :data:`MAX_ORDER_ITEMS` items: the items one shopper bought at one
    time, of the purchases ``keep`` takes. A larger order (a reseller's restock) says little
    about what belongs together, and its pairs would outnumber everyone else's: it is skipped."""
    for history in histories.values():
        by_time: dict[object, set[str]] = defaultdict(set)
        for interaction in history:
            if interaction.type == "purchase" and keep(interaction):
                by_time[interaction.at].add(interaction.item_id)
        for order in by_time.values():
            if 2 <= len(order) <= MAX_ORDER_ITEMS:
                yield order


def co_purchase_pairs(
    histories: Mapping[str, Sequence[Interaction]],
    texts: Mapping[str, str],
    limit: int,
    min_count: int = MIN_CO_PURCHASES,
    per_text: int = CO_PURCHASES_PER_TEXT,
) -> list[Pair]:
    """Up to ``limit`` pairs of items bought together (by one shopper at one time: one order) in
    at least ``min_count`` orders, the most strongly associated first, each text in at most
    ``per_text`` pairs; items without a text, and pairs of two items with the same text, are
    left out.

    Association is the pair's orders over the geometric mean of each item's orders (the cosine
    of the two items' order sets), ties by item ids. Ranked by raw counts, the best sellers
    would make most pairs (in Online Retail before 2011-08-01 one text was in 625 of the 20,000
    most frequent), teaching the model that everything goes with them; and since a text appears
    once per batch, their pairs would end in batches of a pair or two, with no negatives to
    learn from (bench/README.md). Orders are those :func:`orders` reads."""
    counts: Counter[tuple[str, str]] = Counter()
    orders_of: Counter[str] = Counter()
    for order in orders(histories, lambda interaction: interaction.item_id in texts):
        counts.update(itertools.combinations(sorted(order), 2))
        orders_of.update(order)
    # the squared cosine as an exact fraction: equal strengths tie exactly, by item ids
    strength = {
        pair: Fraction(n * n, orders_of[pair[0]] * orders_of[pair[1]])
        for pair, n in counts.items()
        if n >= min_count and texts[pair[0]] != texts[pair[1]]
    }
    taken: Counter[str] = Counter()
    pairs: list[Pair] = []
    for a, b in sorted(strength, key=lambda p: (-strength[p], p)):
        if len(pairs) >= limit:
            break
        pair = Pair(texts[a], texts[b])
        if taken[pair.text_a] < per_text and taken[pair.text_b] < per_text:
            taken.update((pair.text_a, pair.text_b))
            pairs.append(pair)
    return pairs


def abt_buy_pairs(data: AbtBuy, pairs: Sequence[tuple[str, str]]) -> list[Pair]:
    """(Abt text, Buy text) for each pair: the twin the evaluation searches for."""
    return [Pair(item_text(data.abt[a]), item_text(data.buy[b])) for a, b in pairs]


def hold_out(pairs: Sequence[Pair], share: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): distinct pairs shuffled with ``seed``, ``share`` of them held out (at
    least one when ``share`` > 0 and there are two or more)."""
    unique = list(dict.fromkeys(pairs))
    random.Random(seed).shuffle(unique)
    count = round(len(unique) * share)
    if share > 0 and len(unique) >= 2:
        count = max(1, count)
    return unique[count:], unique[:count]


def batches(pairs: Sequence[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """One epoch's batches: the pairs shuffled, no text twice in a batch (the repeat would be a
    false negative for the other pair); a pair that would repeat one waits for a later batch."""
    waiting = list(pairs)
    rng.shuffle(waiting)
    out: list[list[Pair]] = []
    while waiting:
        batch: list[Pair] = []
        seen: set[str] = set()
        later: list[Pair] = []
        for pair in waiting:
            if len(batch) < size and pair.text_a not in seen and pair.text_b not in seen:
                batch.append(pair)
                seen.update((pair.text_a, pair.text_b))
            else:
                later.append(pair)
        out.append(batch)
        waiting = later
    return out
