"""A temporal split of purchase histories: what each shopper did before a cutoff, and after.

Pure: no I/O, no clock. The truth holds only items new to the shopper, because the ranking
never recommends what they already bought.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from stream.ranking.profile import Interaction


@dataclass(frozen=True)
class Split:
    history: dict[str, list[Interaction]]
    """Per evaluated shopper, the purchases before the cutoff, in the input order."""
    truth: dict[str, frozenset[str]]
    """Per evaluated shopper, the catalogue items first bought at or after the cutoff."""

    @property
    def users(self) -> list[str]:
        return sorted(self.truth)


def temporal_split(
    purchases: Mapping[str, Sequence[Interaction]],
    cutoff: datetime,
    catalogue: Collection[str],
) -> Split:
    """Shoppers with purchases before ``cutoff`` and new catalogue items bought from it on.

    An item bought before the cutoff is never truth, even if bought again later; truth items
    outside ``catalogue`` are dropped, and a shopper whose truth is then empty is not evaluated.
    """
    known = set(catalogue)
    history: dict[str, list[Interaction]] = {}
    truth: dict[str, frozenset[str]] = {}
    for user, interactions in purchases.items():
        before = [i for i in interactions if i.at < cutoff]
        bought = {i.item_id for i in before}
        new = frozenset(
            i.item_id
            for i in interactions
            if i.at >= cutoff and i.item_id not in bought and i.item_id in known
        )
        if before and new:
            history[user] = before
            truth[user] = new
    return Split(history, truth)


def history_before(
    purchases: Mapping[str, Sequence[Interaction]], cutoff: datetime
) -> dict[str, list[Interaction]]:
    """Every shopper's purchases before ``cutoff`` (shoppers with none are left out)."""
    out = {user: [i for i in p if i.at < cutoff] for user, p in purchases.items()}
    return {user: p for user, p in out.items() if p}
