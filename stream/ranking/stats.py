"""Item interaction statistics: decayed popularity and co-occurrence, order-independent.

Every value is stored decayed to the stats' reference time ``ref`` (the latest activity seen), so
two activities can be added in either order and give the same sum: decay is multiplicative, and
``decayed(decayed(v, a, b), b, c) == decayed(v, a, c)``.

Each activity's ``source`` names the input event it came from (``topic/partition/offset#item``).
An item's activities from one input partition arrive in offset order (the behaviour consumer
publishes them so, one writer per input partition, the internal topic keyed by item), so the
stats keep one watermark per input partition, the last offset applied: an activity at or below
it is a replay (a redone behaviour batch) and is not counted twice, however many activities came
in between.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from schemas import jsontext
from schemas.activity import ItemActivity
from schemas.source import source_position
from stream.ranking.profile import Interaction

_SECONDS_PER_HOUR = 3600.0


class DamagedStats(ValueError):
    """A stored stats record that cannot be read: a field that is not valid JSON, of the wrong
    type, not finite, or the record of another item."""


def half_lives(at: datetime, ref: datetime, half_life_hours: float) -> float:
    """How many half-lives ``ref`` comes after ``at`` (negative when before): ``-log2`` of the
    decay factor, for callers that must compare factors too large or small for a float."""
    return (ref - at).total_seconds() / _SECONDS_PER_HOUR / half_life_hours


def decayed(value: float, at: datetime, ref: datetime, half_life_hours: float) -> float:
    """``value`` seen at ``at`` as it counts at ``ref``: halved per half-life (grows if earlier).

    A value counted over ~1,024 half-lives before it was seen grows past the largest float: it
    is infinite (with its sign), never an error. Callers that move values back in time, or far,
    work with :func:`half_lives` instead.
    """
    if value == 0:
        return 0.0  # and no overflow for a zero seen long after ``ref``
    try:
        return value * math.pow(0.5, half_lives(at, ref, half_life_hours))
    except OverflowError:
        return math.copysign(math.inf, value)


def activities_for(
    event: Interaction,
    previous: Sequence[Interaction],
    weights: Mapping[str, float],
    window: int,
    source: str,
) -> list[ItemActivity]:
    """The item activities of one new interaction: its own item's, then one per paired item.

    The event's item is paired with the shopper's last ``window`` distinct other items *before*
    it (by ``(at, event_id)``), each pair weighing the smaller of the two interactions' weights
    (a view next to a purchase is only view-strong evidence). Only earlier interactions pair, so
    ``previous`` may be the merged history including this event and its batch: each pair comes
    from its later event, once. Every pair is also sent to the other item, which keeps
    co-occurrence symmetric; pairs that weigh nothing are left out.
    """
    weight = weights.get(event.type, 0.0)
    before = sorted(
        (i for i in previous if (i.at, i.event_id) < (event.at, event.event_id)),
        key=lambda i: (i.at, i.event_id),
        reverse=True,
    )
    pairs: dict[str, float] = {}
    considered: set[str] = set()
    for i in before:
        if len(considered) >= window:
            break
        if i.item_id == event.item_id or i.item_id in considered:
            continue
        # the item's most recent interaction before the event speaks for it
        considered.add(i.item_id)
        pair = min(weight, weights.get(i.type, 0.0))
        if pair > 0:
            pairs[i.item_id] = pair
    own = ItemActivity(event.item_id, weight, event.at, f"{source}#{event.item_id}", pairs)
    others = [
        ItemActivity(other, 0.0, event.at, f"{source}#{other}", {event.item_id: pair})
        for other, pair in pairs.items()
    ]
    return [own, *others]


def apply_activity(
    stats: Mapping[str, Any] | None,
    activity: ItemActivity,
    half_life_hours: float,
    max_co: int,
) -> dict[str, Any] | None:
    """The item's stats payload after ``activity``, or None when it was already applied.

    Payload: ``{"item_id", "pop", "co", "ref", "upto"}``, values decayed to ``ref``, ``upto``
    the last offset applied per input partition. Only the ``max_co`` strongest co-occurring
    items are kept (ties by item id); like any bounded sketch, co-occurrence is exact, and
    order-independent, only while an item has no more partners.
    """
    item_id, pop, co, ref, upto = _parse(stats, activity.item_id)
    partition, offset = source_position(activity.source)
    if offset <= upto.get(partition, -1):
        return None
    at = activity.at.astimezone(UTC)
    new_ref = at if ref is None or at > ref else ref
    if ref is not None:
        pop = decayed(pop, ref, new_ref, half_life_hours)
        co = {k: decayed(v, ref, new_ref, half_life_hours) for k, v in co.items()}
    pop += decayed(activity.weight, at, new_ref, half_life_hours)
    for other, weight in activity.co.items():
        if other != item_id:
            co[other] = co.get(other, 0.0) + decayed(weight, at, new_ref, half_life_hours)
    strongest = sorted(co.items(), key=lambda kv: (-kv[1], kv[0]))[: max(max_co, 0)]
    return {
        "item_id": item_id,
        "pop": pop,
        "co": dict(strongest),
        "ref": new_ref.isoformat(),
        "upto": {**upto, partition: offset},
    }


# A scale below this is applied to the entries and reset to 1, so that a new value divided by it
# stays far from overflow and an old value times it far from underflow.
_RESCALE_BELOW = 2.0**-30


def fold_activities(
    stats: Mapping[str, Any] | None,
    activities: Iterable[ItemActivity],
    half_life_hours: float,
    max_co: int,
) -> tuple[dict[str, Any] | None, int]:
    """The item's stats payload after ``activities`` in turn, and how many applied (the others
    were replays); the payload is None when none applied.

    Gives what :func:`apply_activity` one activity at a time gives, to float rounding, without
    its cost per activity (decaying, sorting and copying every ``co`` entry). Moving ``ref``
    decays every entry by one shared factor, which leaves their order as it is, so the entries
    are kept as value / ``scale`` and only ``scale`` moves, applied once at the end. Picking
    the ``max_co`` strongest changes anything only when there are more, and it can wait until
    the next activity adds to ``co`` (moving ``scale`` keeps the order): an activity's cut is
    made just before the next applied activity's additions, the last one's at the end, where
    ``co`` is sorted once.
    """
    item_id, pop, scale = "", 0.0, 1.0
    co: dict[str, float] = {}
    ref: datetime | None = None
    upto: dict[str, int] = {}
    applied = 0
    parsed = False
    keep = max(max_co, 0)
    for activity in activities:
        # whose stats these are: until one applies, the stats given say (as _parse reads them)
        if applied:
            owner: object = item_id
        else:
            owner = stats.get("item_id", activity.item_id) if stats else activity.item_id
        if owner != activity.item_id:
            # the stored record's owner (before any applied) or this call's activities differ
            error = ValueError if applied else DamagedStats
            raise error(f"stats of {owner!r} cannot take activity of {activity.item_id!r}")
        if not parsed:
            item_id, pop, co, ref, upto = _parse(stats, activity.item_id)
            parsed = True
        item_id = activity.item_id
        partition, offset = source_position(activity.source)
        if offset <= upto.get(partition, -1):
            continue
        at = activity.at.astimezone(UTC)
        if ref is None or at > ref:
            if ref is not None:
                factor = decayed(1.0, ref, at, half_life_hours)
                pop *= factor
                scale *= factor
                if scale < _RESCALE_BELOW:
                    co = {k: v * scale for k, v in co.items()}
                    scale = 1.0
            ref = at
            gain = 1.0
        else:
            gain = decayed(1.0, at, ref, half_life_hours)
        pop += activity.weight * gain
        if applied and len(co) > keep:  # the previous activity's cut (not the stored map's)
            _drop_weakest(co, len(co) - keep)
        stored_gain = gain / scale
        for other, weight in activity.co.items():
            if other != item_id:
                co[other] = co.get(other, 0.0) + weight * stored_gain
        upto[partition] = offset
        applied += 1
    if not applied or ref is None:
        return None, applied
    # scaled first: values that differ only below the smallest float become equal there, and
    # then tie by item id as apply_activity's would
    co = {k: v * scale for k, v in co.items()}
    # by item id, then (stable) by value, the largest first: the strongest, ties by item id
    strongest = sorted(co)
    strongest.sort(key=co.__getitem__, reverse=True)
    payload = {
        "item_id": item_id,
        "pop": pop,
        "co": {k: co[k] for k in strongest[:keep]},
        "ref": ref.isoformat(),
        "upto": upto,
    }
    return payload, applied


def _drop_weakest(co: dict[str, float], count: int) -> None:
    """Drops the ``count`` weakest entries of ``co`` (0 < count <= len(co)): the smallest values,
    of equal values the largest item ids."""
    cut = sorted(co.values())[count - 1]
    weak = [k for k, v in co.items() if v <= cut]
    if len(weak) > count:  # entries equal to ``cut`` on both sides: the largest ids go
        tied = sorted((k for k in weak if co[k] == cut), reverse=True)
        weak = [k for k in weak if co[k] < cut] + tied[: count - (len(weak) - len(tied))]
    for k in weak:
        del co[k]


RECORD = "stats"
"""The stored record's field that holds all of it but its sort key, as one JSON text."""


def stored_stats(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A stats payload as the store keeps it: the sort key ``pop_key`` as a field of its own
    (ordered by the store), everything else as one JSON text, ``stats``. Nothing filters on
    the rest, and the embedded engine's points cost ~9 us per payload field whatever its size
    (2,500 points: 96 ms with the seven fields a field each, 19 ms with one text of all of
    them; bench/README.md, "Small measurements"). Records stored a field each are
    still read (:func:`unpacked`)."""
    out: dict[str, Any] = {
        RECORD: jsontext.dumps({k: v for k, v in payload.items() if k != "pop_key"})
    }
    if "pop_key" in payload:
        out["pop_key"] = payload["pop_key"]
    return out


def unpacked(stats: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A stored record's fields, whichever way it was stored: its ``stats`` text read and the
    fields beside it added, or (stored before) as it is; :class:`DamagedStats` when the text
    is not a JSON object."""
    if not stats or RECORD not in stats:
        return stats
    try:
        inner = _mapping(stats[RECORD])
    except (ValueError, TypeError, RecursionError) as exc:
        raise DamagedStats(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    return {**inner, **{k: v for k, v in stats.items() if k != RECORD}}


def _mapping(value: object) -> Mapping[str, Any]:
    """A stored object field: a JSON text (or, as stored before, an object); none is empty."""
    if isinstance(value, str):
        value = jsontext.loads(value)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"an object was expected, not {type(value).__name__}")
    return value


def _weights(value: object) -> dict[str, float]:
    """A stored ``co``: item ids to floats."""
    mapping = _mapping(value)
    if set(map(type, mapping.values())) <= {float} and set(map(type, mapping)) <= {str}:
        return dict(mapping)  # as JSON gave it, alone or in the record's text (the usual case)
    return {str(k): float(v) for k, v in mapping.items()}


_Parsed = tuple[str, float, dict[str, float], datetime | None, dict[str, int]]


def _parse(stats: Mapping[str, Any] | None, item_id: str) -> _Parsed:
    """The stored record's fields; :class:`DamagedStats` when one cannot be read."""
    stats = unpacked(stats)
    if not stats:
        return item_id, 0.0, {}, None, {}
    if stats.get("item_id", item_id) != item_id:
        raise DamagedStats(f"stats of {stats.get('item_id')!r} cannot take activity of {item_id!r}")
    try:
        ref_raw = stats.get("ref")
        ref = datetime.fromisoformat(ref_raw).astimezone(UTC) if isinstance(ref_raw, str) else None
        co = _weights(stats.get("co"))
        upto = {str(k): int(v) for k, v in _mapping(stats.get("upto")).items()}
        if "upto" not in stats:
            upto = _watermarks_of_seen(stats.get("seen"))
        pop = float(stats.get("pop", 0.0))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise DamagedStats(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not (math.isfinite(pop) and all(map(math.isfinite, co.values()))):
        raise DamagedStats("pop or co holds a value that is not finite")
    return item_id, pop, co, ref, upto


def _watermarks_of_seen(seen: object) -> dict[str, int]:
    """The watermarks a record stored before them implies: it listed its last 1,000 sources
    (``seen``), each partition's in offset order, so its highest offset per partition was the
    last applied. The next write stores ``upto`` instead, and ``seen`` is gone."""
    if isinstance(seen, str):
        seen = jsontext.loads(seen)
    upto: dict[str, int] = {}
    for source in seen if isinstance(seen, list) else []:
        try:
            partition, offset = source_position(str(source))
        except ValueError:
            continue  # a source without an offset: nothing later can be its replay
        upto[partition] = max(offset, upto.get(partition, -1))
    return upto


def popularity_at(stats: Mapping[str, Any] | None, ref: datetime, half_life_hours: float) -> float:
    """The item's decayed popularity as it counts at ``ref``; 0 without stats."""
    stats = unpacked(stats)
    if not stats or not isinstance(stats.get("ref"), str):
        return 0.0
    at = datetime.fromisoformat(stats["ref"])
    return decayed(float(stats.get("pop", 0.0)), at, ref, half_life_hours)


def cooccurrence(stats: Mapping[str, Any] | None) -> tuple[datetime | None, dict[str, float]]:
    """The item's co-occurring items and their weights as stored, and the time they count at
    (None, and no items, without stats); :class:`DamagedStats` when they cannot be read."""
    stats = unpacked(stats)
    if not stats or not isinstance(stats.get("ref"), str):
        return None, {}
    try:
        at, co = datetime.fromisoformat(stats["ref"]).astimezone(UTC), _weights(stats.get("co"))
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise DamagedStats(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if not all(map(math.isfinite, co.values())):
        raise DamagedStats("co holds a value that is not finite")
    return at, co


def cooccurrence_at(
    stats: Mapping[str, Any] | None, ref: datetime, half_life_hours: float
) -> dict[str, float]:
    """The item's co-occurring items and their weights as they count at ``ref``."""
    at, co = cooccurrence(stats)
    if at is None:
        return {}
    return {k: decayed(v, at, ref, half_life_hours) for k, v in co.items()}


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
NO_POPULARITY = -1e300
"""The stored sort key (``pop_key``) of an item without popularity: it still sorts, last."""


def popularity_key(stats: Mapping[str, Any] | None, half_life_hours: float) -> float | None:
    """A sort key ordering items by popularity at any common time, whatever each item's ``ref``.

    ln(pop decayed to T) = ln(pop) - ln2 * (T - ref) / half_life, so ``ln(pop) + ln2 * (ref -
    epoch) / half_life`` orders items exactly as their popularity at any shared T does. None when
    the item has no popularity.
    """
    stats = unpacked(stats)
    if not stats:
        return None
    pop = stats.get("pop")
    ref = stats.get("ref")
    if not isinstance(pop, int | float) or pop <= 0 or not isinstance(ref, str):
        return None
    hours = (datetime.fromisoformat(ref) - _EPOCH).total_seconds() / 3600
    return math.log(pop) + math.log(2) * hours / half_life_hours
