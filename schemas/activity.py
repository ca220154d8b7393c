"""The internal item-activity topic's messages (key = ``item_id``): the behaviour consumer
repartitions each shopper event by item, and the item-stats consumer reads them in item order."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.source import source_position


@dataclass(frozen=True)
class ItemActivity:
    """One item's share of one shopper interaction, keyed by item (the repartitioned stream).

    ``source`` is unique per original event and item (like ``"user.events/3/1207#sku-1"``: the
    input partition, the offset, the item); ``co`` maps the other items the shopper recently
    touched to the weight of the pair.
    """

    item_id: str
    weight: float
    at: datetime
    source: str
    co: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {
            "item_id": self.item_id,
            "weight": self.weight,
            "at": self.at.isoformat(),
            "source": self.source,
            "co": self.co,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, b: bytes) -> ItemActivity:
        """Inverse of :meth:`to_json`; raises ``ValueError`` on anything else."""
        try:
            body = json.loads(b)
        # JSONDecodeError, UnicodeDecodeError; nesting deeper than the parser's stack
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError(f"not JSON: {str(exc)[:200]}") from exc
        if not isinstance(body, dict):
            raise ValueError("an item activity must be a JSON object")
        item_id, source, at_raw = (_text(body, name) for name in ("item_id", "source", "at"))
        source_position(source)
        at = datetime.fromisoformat(at_raw)
        if at.utcoffset() is None:
            raise ValueError("at must carry a time zone")
        co = body.get("co", {})
        if not isinstance(co, dict) or not all(isinstance(k, str) and k for k in co):
            raise ValueError("co must map item ids to weights")
        return cls(
            item_id=item_id,
            weight=_weight(body.get("weight"), "weight"),
            at=at,
            source=source,
            co={k: _weight(v, f"co[{k!r}]") for k, v in co.items()},
        )


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _weight(value: object, name: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        number = float(value)  # an integer of hundreds of digits overflows here
    except OverflowError:
        raise ValueError(f"{name} is too large") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and not negative")
    return number
