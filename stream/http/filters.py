"""The item filters the query endpoints share, turned into a store filter on the item payload
the catalog consumer writes (``price``, ``in_stock``, ``categories``)."""

from __future__ import annotations

from dataclasses import dataclass

from stream.store import Where


@dataclass(frozen=True)
class ItemFilters:
    """Every filter given must hold.

    - ``in_stock``: the item's stock flag is this value;
    - ``min_price``, ``max_price``: inclusive bounds on the item's price (an item without a
      price is left out when either is given);
    - ``category``: one of the item's categories (any level of its path) is exactly this.
    """

    in_stock: bool | None = None
    min_price: float | None = None
    max_price: float | None = None
    category: str | None = None

    def where(self, exclude: frozenset[str] = frozenset()) -> Where:
        """The store filter, also leaving out the items ``exclude`` names."""
        priced = self.min_price is not None or self.max_price is not None
        return Where(
            exclude_keys=exclude,
            contains=("categories", self.category) if self.category is not None else None,
            within=("price", self.min_price, self.max_price) if priced else None,
            flag=("in_stock", self.in_stock) if self.in_stock is not None else None,
        )
