"""Real product texts for the encoder benchmark, from ``../shared/data`` when it is there.

Flipkart products become the text recstream embeds for an item (title, brand, categories and
description, see :mod:`encoders.text`); Online Retail contributes its short product
descriptions. Without the data, generated sample items stand in (and the result says so).
"""

from __future__ import annotations

import csv
import gzip
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from encoders.text import item_text
from recstream_tools.sample_catalog import sample_items
from schemas.catalog import Item

DATA = Path("../shared/data")
FLIPKART = ("flipkart/flipkart_com-ecommerce_sample_1050.csv",)
ONLINE_RETAIL = "online_retail/online_retail.csv.gz"
ABT_BUY = ("abt_buy/Abt.csv", "abt_buy/Buy.csv")
_SEED = 20261122


@dataclass(frozen=True)
class Corpus:
    texts: list[str]
    sources: dict[str, int]
    """How many texts came from each source."""


def _flipkart(data: Path) -> list[str]:
    texts: list[str] = []
    for name in FLIPKART:
        path = data / name
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                tree = row["product_category_tree"].strip('[]"')
                item = Item(
                    item_id=row["uniq_id"][:64],
                    title=row["product_name"][:1000],
                    description=row["description"][:20_000] or None,
                    brand=row["brand"][:200] or None,
                    categories=[c.strip()[:200] for c in tree.split(">>") if c.strip()][:16],
                )
                texts.append(item_text(item))
    return texts


def _online_retail(data: Path) -> list[str]:
    path = data / ONLINE_RETAIL
    if not path.is_file():
        return []
    seen: dict[str, None] = {}
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = " ".join((row["Description"] or "").split())
            if len(text) > 3 and any(c.isalpha() for c in text):
                seen.setdefault(text, None)
    return list(seen)


def product_texts(n: int, data: Path = DATA) -> Corpus:
    """``n`` texts (a fixed-seed sample): half Flipkart, half Online Retail where both exist."""
    flipkart, retail = _flipkart(data), _online_retail(data)
    rng = random.Random(_SEED)
    if not flipkart and not retail:
        items = sample_items(n, seed=_SEED)
        texts = [item_text(Item.model_validate(i)) for i in items]
        return Corpus(texts, {"generated_sample_items": len(texts)})
    want_fk = min(len(flipkart), n - min(len(retail), n // 2))
    picked_fk = rng.sample(flipkart, want_fk)
    picked_or = rng.sample(retail, min(len(retail), n - want_fk))
    texts = picked_fk + picked_or
    rng.shuffle(texts)
    return Corpus(texts, {"flipkart": len(picked_fk), "online_retail": len(picked_or)})


def _abt_buy(data: Path) -> list[str]:
    """Abt and Buy products: name, then description (the files are latin-1)."""
    texts: list[str] = []
    for name in ABT_BUY:
        path = data / name
        if not path.is_file():
            continue
        with path.open(encoding="latin-1", newline="") as f:
            for row in csv.DictReader(f):
                text = " ".join(f"{row['name']}. {row.get('description') or ''}".split())
                texts.append(text)
    return texts


def token_windows(
    n: int, target: int, count_tokens: Callable[[Sequence[str]], list[int]], data: Path = DATA
) -> Corpus:
    """Up to ``n`` distinct texts of ``3/4 * target`` to ``target`` tokens (special tokens
    counted): runs of whole words cut from Flipkart and Abt-Buy product texts, or from generated
    sample items without the data. ``count_tokens`` is the encoder's, for one word at a time
    (a BERT tokenizer splits text at spaces before it splits words into pieces).
    """
    sources = {"flipkart": _flipkart(data), "abt_buy": _abt_buy(data)}
    if not any(sources.values()):
        items = sample_items(max(n, 1_000), seed=_SEED)
        sources = {"generated_sample_items": [item_text(Item.model_validate(i)) for i in items]}
    windows: dict[str, str] = {}
    for source, texts in sources.items():
        for text in texts:
            words = text.split()
            sizes = [c - 2 for c in count_tokens(words)] if words else []
            run: list[str] = []
            used = 2  # [CLS] and [SEP]
            for word, size in zip(words, sizes, strict=True):
                if run and used + size > target:
                    if used >= 0.75 * target:
                        windows.setdefault(" ".join(run), source)
                    run, used = [], 2
                run.append(word)
                used += size
            if run and 0.75 * target <= used <= target:
                windows.setdefault(" ".join(run), source)
    picked = random.Random(_SEED).sample(sorted(windows), min(n, len(windows)))
    counts: dict[str, int] = {}
    for text in picked:
        counts[windows[text]] = counts.get(windows[text], 0) + 1
    return Corpus(picked, counts)


FLIPKART_ALL = (*FLIPKART, "flipkart/flipkart_com-ecommerce_sample_first999.csv")


def _named(title: str, brand: str | None = None, categories: list[str] | None = None) -> Item:
    return Item(
        item_id="x",
        title=" ".join(title.split())[:1000],
        brand=" ".join((brand or "").split())[:200] or None,
        categories=[c[:200] for c in categories or []][:16],
    )


def _product_names(data: Path) -> dict[str, list[Item]]:
    """Products as shops name them, by source: Flipkart (name, brand, category path), Abt and
    Buy (name, manufacturer), Online Retail (its short descriptions); no long descriptions."""
    found: dict[str, list[Item]] = {"flipkart": [], "abt_buy": [], "online_retail": []}
    for name in FLIPKART_ALL:
        path = data / name
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    if not (row.get("product_name") or "").strip():
                        continue  # padding rows
                    tree = row["product_category_tree"].strip('[]"')
                    path_ = [c.strip() for c in tree.split(">>") if c.strip()][:-1]
                    found["flipkart"].append(_named(row["product_name"], row["brand"], path_))
    for name in ABT_BUY:
        path = data / name
        if path.is_file():
            with path.open(encoding="latin-1", newline="") as f:
                for row in csv.DictReader(f):
                    if row["name"].strip():
                        found["abt_buy"].append(_named(row["name"], row.get("manufacturer")))
    found["online_retail"] = [_named(text.capitalize()) for text in _online_retail(data)]
    return found


_VARIANTS = (
    "Black", "White", "Red", "Blue", "Green", "Grey", "Size S", "Size M", "Size L", "Size XL",
    "Pack of 2", "Pack of 3", "Set of 4", "Large", "Small", "Mini", "Pro", "Plus", "Kids", "Travel",
)  # fmt: skip
"""What tells a product's variants apart in a shop's names: colours, sizes, packs, editions."""


def variant(title: str, round_: int) -> str:
    """``title`` as its ``round_``-th variant (0: itself): a suffix of variant words, one per
    base-20 digit of the round, so that each round's names differ from every other round's."""
    words = []
    while round_ > 0:
        round_ -= 1
        words.append(_VARIANTS[round_ % len(_VARIANTS)])
        round_ //= len(_VARIANTS)
    return f"{title} - {', '.join(words)}" if words else title


def product_items(
    n: int, data: Path = DATA, prefix: str = "p"
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``n`` catalogue items (wire-format dicts) named like real products, in a fixed-seed
    shuffled order, each title once. The shared data's products come first; when they run out,
    the same products again as variants (a colour, a size, a pack: :func:`variant`), in the same
    order, so that any stretch of the list holds texts of the same kind and length (generated
    sample items, ~4x as many tokens, made a load of later items heavier than the rate measured
    on the first). Without the data, generated sample items. Ids are ``<prefix>-0000001``
    upwards. Also returns how many came from each source (variants as ``<source>_variant``)."""
    rng = random.Random(_SEED)
    seen: set[str] = set()
    pool: list[tuple[str, Item]] = []
    for source, items in _product_names(data).items():
        for item in items:
            if item.title.lower() not in seen:
                seen.add(item.title.lower())
                pool.append((source, item))
    rng.shuffle(pool)
    if not pool:
        extra = [Item.model_validate(i) for i in sample_items(n, seed=_SEED)]
        pool = [("generated_sample_items", i) for i in extra]
    picked: list[tuple[str, Item]] = []
    round_ = 0
    while len(picked) < n:
        for source, item in pool[: n - len(picked)]:
            if round_:
                title = variant(item.title, round_)[:1000]
                source, item = f"{source}_variant", item.model_copy(update={"title": title})
            picked.append((source, item))
        round_ += 1
    out: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for number, (source, item) in enumerate(picked, start=1):
        counts[source] = counts.get(source, 0) + 1
        wire = item.model_dump(mode="json", exclude_none=True)
        out.append({**wire, "item_id": f"{prefix}-{number:07d}"})
    return out, counts
