"""Product-matching and categorised catalogues for ``recstream eval neighbours``, as the items the
consumers would receive (:class:`schemas.catalog.Item`), and the Abt-Buy train/test split.

- Abt-Buy (``abt_buy/``): ``Abt.csv`` (id, name, description, price), ``Buy.csv`` (id, name,
  description, manufacturer, price), ``abt_buy_perfectMapping.csv`` (idAbt, idBuy), latin-1.
  An item's title is the name, its description the description, its brand Buy's manufacturer.
- Flipkart (``flipkart/*.csv``): ``uniq_id, product_name, product_category_tree, description,
  brand, ...``. The items carry no categories: the category is what the lists are judged by, and
  the encoder would otherwise read the answer in the text.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from schemas.catalog import Item

SPLIT_SALT = "recstream-abt-buy-split"
"""Part of the hash that puts each group of pairs on the train or the test side; fixed, so that
every run and every model sees the same test pairs."""


@dataclass(frozen=True)
class AbtBuy:
    abt: dict[str, Item]
    buy: dict[str, Item]
    pairs: list[tuple[str, str]]
    """(Abt id, Buy id): the two are the same product."""


@dataclass(frozen=True)
class Catalogue:
    name: str
    items: dict[str, Item]
    leaf: dict[str, str]
    """Each item's leaf category, ``"A > B > C"``; ``""`` when its tree names none."""


def _read(path: Path, encoding: str) -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as f:
        return [{k: (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]


def _item(item_id: str, title: str, description: str, brand: str = "") -> Item | None:
    """The item, or None when the row would be rejected by the consumer (no title, ...)."""
    try:
        return Item(
            item_id=item_id, title=title, description=description or None, brand=brand or None
        )
    except ValidationError:
        return None


def _items(rows: list[dict[str, str]], brand: str) -> dict[str, Item]:
    items = (_item(r["id"], r["name"], r["description"], r.get(brand, "")) for r in rows)
    return {i.item_id: i for i in items if i is not None}


def load_abt_buy(directory: Path) -> AbtBuy:
    """The Abt and Buy products and the true pairs between products both files hold."""
    abt = _items(_read(directory / "Abt.csv", "latin-1"), brand="")
    buy = _items(_read(directory / "Buy.csv", "latin-1"), brand="manufacturer")
    mapping = _read(directory / "abt_buy_perfectMapping.csv", "latin-1")
    pairs = sorted(
        {(r["idAbt"], r["idBuy"]) for r in mapping if r["idAbt"] in abt and r["idBuy"] in buy}
    )
    return AbtBuy(abt, buy, pairs)


def split_pairs(
    pairs: list[tuple[str, str]],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, test): about half of the pairs each, the same on every run.

    Pairs that share a product form a group (an Abt product with two Buy twins, ...), and a group
    goes to one side whole, so no product of a test pair is ever seen in training. A group is on
    the test side when the SHA-256 of ``SPLIT_SALT:<its smallest Abt id>`` is odd.
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in pairs:
        parent[root(f"b:{b}")] = root(f"a:{a}")
    smallest: dict[str, str] = {}
    for a, _ in pairs:
        group = root(f"a:{a}")
        smallest[group] = min(smallest.get(group, a), a)
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for a, b in pairs:
        key = f"{SPLIT_SALT}:{smallest[root(f'a:{a}')]}".encode()
        (test if hashlib.sha256(key).digest()[-1] % 2 else train).append((a, b))
    return train, test


def twins(pairs: list[tuple[str, str]]) -> dict[str, set[str]]:
    """Each Abt product's true Buy twins."""
    found: dict[str, set[str]] = defaultdict(set)
    for a, b in pairs:
        found[a].add(b)
    return dict(found)


def leaf_category(tree: str, name: str, brand: str = "") -> str:
    """The category path of a Flipkart ``product_category_tree``, without the segments that name
    a brand or the product itself.

    Flipkart's trees run from categories into a brand's shelf and the product:
    ``Watches >> Wrist Watches >> Maserati Time Wrist Watches`` (a segment that is its parent
    with the product's brand, or the start of its name, before it) or ``Kitchen & Dining >>
    Coffee Mugs >> AKUP Coffee Mugs >> AKUP i-love-my-mom Ceramic Mug (300 ml)`` (the product's
    name, maybe cut with ``...``). The path stops before the first such segment.
    """
    try:
        paths = json.loads(tree)
        path = str(paths[0]) if isinstance(paths, list) and paths else tree
    except ValueError:
        path = tree
    product = " ".join(name.split()).lower()
    maker = " ".join(brand.split()).lower()
    kept: list[str] = []
    for segment in (" ".join(s.split()) for s in path.split(">>")):
        low = segment.lower()
        if not low or low.endswith("...") or product.startswith(low) or low.startswith(product):
            break
        if kept:
            parent = kept[-1].lower()
            if low.endswith(" " + parent):
                before = low.removesuffix(" " + parent).strip()
                if before == maker or product.startswith(before):
                    break
        kept.append(segment)
    return " > ".join(kept)


def load_flipkart(path: Path) -> Catalogue:
    """A Flipkart catalogue sample; rows without a title are left out."""
    items: dict[str, Item] = {}
    leaf: dict[str, str] = {}
    for row in _read(path, "utf-8"):
        item = _item(row["uniq_id"], row["product_name"], row["description"], row["brand"])
        if item is None or item.item_id in items:
            continue
        items[item.item_id] = item
        leaf[item.item_id] = leaf_category(
            row["product_category_tree"], row["product_name"], row["brand"]
        )
    return Catalogue(path.stem.removeprefix("flipkart_com-ecommerce_sample_"), items, leaf)
