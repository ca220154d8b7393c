"""A migration's steps around the build: where the served consumers stand, the checks, the
switch of the pointer, and the way back."""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from encoders.base import DEFAULT_MODEL
from encoders.hybrid import parse_mix
from stream.collections import ITEMS, USERS
from stream.errors import Refused
from stream.generations import (
    MODEL_MADE,
    Generation,
    GenerationStore,
    read_pointer,
    reserve,
    write_pointer,
)
from stream.migration.build import Built, build, owe_every_list
from stream.migration.claim import claimed
from stream.settings import Settings
from stream.store import VectorStore
from stream.store.model_record import MODELS


class NotVerified(Exception):
    """The built generation is not whole; nothing was switched."""


@dataclass(frozen=True)
class Migrated:
    generation: Generation
    built: Built
    recall: dict[str, dict[str, float]] | None = None
    """With pairs given: twin recall of the served (``before``) and new (``after``) vectors."""


Pairs = list[tuple[str, str]]
RECALL_AT = (1, 10)


def read_pairs(path: Path) -> Pairs:
    """The item id pairs of a CSV file (the first two columns; a header row is skipped);
    raises :class:`~stream.errors.Refused` when there are none."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [r[:2] for r in csv.reader(handle) if len(r) >= 2]
    pairs = [(a.strip(), b.strip()) for a, b in rows[1:]]
    if not pairs:
        raise Refused(f"no item id pairs in {path}: a CSV of two columns, with a header")
    return pairs


def pair_recall(view: VectorStore, pairs: Pairs) -> dict[str, float]:
    """For each pair of stored items, whether the second is among the first's k most similar
    items of the whole catalogue (exact cosine, itself left out): recall at each k of
    :data:`RECALL_AT`, and how many pairs counted."""
    points = [p for p in view.scroll(ITEMS, with_vectors=True) if p.vector is not None]
    index = {p.key: n for n, p in enumerate(points)}
    usable = [(index[a], index[b]) for a, b in pairs if a in index and b in index and a != b]
    if not usable:
        return {"pairs": 0.0}
    matrix = np.stack([p.vector for p in points if p.vector is not None]).astype(np.float32)
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    ranks = []
    for start in range(0, len(usable), 256):
        chunk = np.array(usable[start : start + 256])
        sims = matrix[chunk[:, 0]] @ matrix.T
        rows = np.arange(len(chunk))
        sims[rows, chunk[:, 0]] = -np.inf
        ranks.append((sims > sims[rows, chunk[:, 1]][:, None]).sum(axis=1))
    rank = np.concatenate(ranks)
    return {"pairs": float(len(usable))} | {f"R@{k}": float((rank < k).mean()) for k in RECALL_AT}


def migrate(
    settings: Settings,
    store: VectorStore,
    from_model: str | None = None,
    progress: Callable[[str, int], None] = lambda stage, n: None,
    pairs: Pairs | None = None,
    force: bool = False,
) -> Migrated:
    """Build the generation of the settings' model (and lexical mix) from the served one,
    verify it, start its consumer groups where the served ones stood before the copy, and
    switch the pointer to it. Raises :class:`~stream.errors.Refused` when it cannot work as
    asked, :class:`NotVerified` when the build is not whole, or (with ``pairs``, unless
    ``force``) finds the pairs' twins less often at any k than the served vectors: nothing
    is switched then; :class:`~stream.migration.claim.Claimed` while another migration or
    rollback runs."""
    with claimed(store, f"building {settings.model}") as renew:

        def progressing(stage: str, n: int) -> None:
            renew()
            progress(stage, n)

        return _migrate(settings, store, from_model, progressing, pairs, force)


def _migrate(
    settings: Settings,
    store: VectorStore,
    from_model: str | None,
    progress: Callable[[str, int], None],
    pairs: Pairs | None,
    force: bool,
) -> Migrated:
    from encoders import load_encoder
    from stream.kafka import offsets
    from stream.runner import check_store_model

    source = read_pointer(store) or _never_migrated(settings, store, from_model)
    check_store_model(source.settings(settings), GenerationStore(store, source))
    model = _absolute(settings.model)
    if model != settings.model:
        settings = settings.model_copy(update={"model": model})
    number = reserve(store, source)
    target = Generation(
        number,
        model,
        settings.lexical_weight,
        settings.lexical_dim,
        previous=source.number,
        earlier=_earlier(source),
    )
    # a hybrid generation stored whole (one dense vector, as before sparse vectors) moves to
    # the sparse layout with the same settings
    whole = source.lexical_weight > 0 and not GenerationStore(store, source).sparse_width(ITEMS)
    if target.same_model(source) and not whole:
        raise Refused(f"generation {source.number} is served with these model settings already")
    old, new = source.settings(settings), target.settings(settings)
    # where the served consumers stand, read before the copy: the new generation's consumers
    # start from there, so whatever the copy misses they apply again
    starts = [
        (old.catalog_group(), new.catalog_group(), settings.topic_items),
        (old.behaviour_group(), new.behaviour_group(), settings.topic_user_events),
    ]
    marks = [(to, offsets.committed(settings, frm, topic)) for frm, to, topic in starts]
    # the same vectors, only laid out anew: copied, not embedded again
    encoder = None if whole and target.same_model(source) else load_encoder(new)
    built = build(settings, store, source, target, encoder, progress)
    wrong = unverified(store, target, built)
    if wrong is not None:
        raise NotVerified(wrong)
    recall = None
    if pairs:
        recall = {
            "before": pair_recall(GenerationStore(store, source), pairs),
            "after": pair_recall(GenerationStore(store, target), pairs),
        }
        if not recall["before"]["pairs"] or recall["before"]["pairs"] != recall["after"]["pairs"]:
            raise NotVerified(
                f"the pairs name {int(recall['before']['pairs'])} pairs of items stored in the "
                f"served generation and {int(recall['after']['pairs'])} in the new one: nothing "
                "to compare; not switched"
            )
        before, after = recall["before"], recall["after"]
        if not force and any(after[f"R@{k}"] < before[f"R@{k}"] for k in RECALL_AT):
            raise NotVerified(
                f"generation {number} finds the pairs' twins less often ({recall_text(recall)}); "
                "not switched: the served generation is untouched (--force switches anyway)"
            )
    now = read_pointer(store)
    if (now.number if now is not None else 0) != source.number:
        raise NotVerified(
            f"the store was switched to generation {now.number if now else 0} during the build "
            f"(from {source.number}): not switched; run one migration at a time"
        )
    for group, marked in marks:
        offsets.commit(settings, group, marked)
    return Migrated(write_pointer(store, target), built, recall)


def recall_text(recall: dict[str, dict[str, float]]) -> str:
    before, after = recall["before"], recall["after"]
    shown = ", ".join(
        f"R@{k} {before.get(f'R@{k}', 0):.3f} -> {after.get(f'R@{k}', 0):.3f}" for k in RECALL_AT
    )
    return f"{int(after['pairs'])} pairs: {shown}"


def rollback(settings: Settings, store: VectorStore, force: bool = False) -> tuple[Generation, int]:
    """Serve the generation served before the current one again, every item's list and every
    shopper's recommendations owed; it and how many items owe their lists. Refused when its
    model no longer loads, or (unless ``force``) when the broker lost events its consumer
    groups have not read, or while another migration or rollback runs."""
    with claimed(store, "rolling back"):
        return _rollback(settings, store, force)


def _rollback(settings: Settings, store: VectorStore, force: bool) -> tuple[Generation, int]:
    current = read_pointer(store)
    if current is None or current.previous is None:
        raise Refused(
            "nothing to roll back to: the store was never migrated, or the generation "
            "before was dropped"
        )
    earlier = current.earlier.get(str(current.previous))
    if earlier is None:
        raise Refused(f"generation {current.previous}'s model settings were not recorded")
    back = Generation(
        current.previous,
        str(earlier["model"]),
        float(earlier["lexical_weight"]),
        int(earlier["lexical_dim"]),
        previous=current.number,
        earlier=_earlier(current),
    )
    from stream.kafka import offsets
    from stream.runner import check_store_model

    # its model must still load (every process follows the pointer to it)
    old = back.settings(settings)
    check_store_model(old, GenerationStore(store, back))
    # its groups resume where they stopped: the broker must still hold every event since
    for group, topic in (
        (old.catalog_group(), settings.topic_items),
        (old.behaviour_group(), settings.topic_user_events),
    ):
        lost = offsets.unkept(settings, group, topic)
        if lost and not force:
            raise Refused(
                f"the broker no longer holds all of {topic} since generation {back.number}'s "
                f"consumers stopped (partitions {lost}: retention, or their commits expired): "
                "rolling back would lose those events; migrate to its model again instead, or "
                "--force"
            )
    owed = owe_every_list(settings, store, back)
    return write_pointer(store, back), owed


def drop(store: VectorStore, number: int) -> list[str]:
    """Remove generation ``number``'s collections and model record (not the served one's); it
    can no longer be rolled back to. The collections removed."""
    with claimed(store, f"dropping generation {number}"):
        current = read_pointer(store)
        if current is None:
            raise Refused("the store was never migrated: it holds one generation, the served one")
        if number == current.number:
            raise Refused(f"generation {number} is the one served: it cannot be dropped")
        gone = Generation(number, "", 0.0, 0)
        names = [gone.collection(name) for name in MODEL_MADE]
        for name in names:
            store.drop_collection(name)
        store.delete(MODELS, [gone.collection(ITEMS)])
        earlier = {k: v for k, v in current.earlier.items() if k != str(number)}
        previous = None if current.previous == number else current.previous
        kept = Generation(**{**asdict(current), "earlier": earlier, "previous": previous})
        write_pointer(store, kept, stamp=False)
        return names


def _never_migrated(settings: Settings, store: VectorStore, from_model: str | None) -> Generation:
    """Generation 0 of a store without a pointer: the model given (the packaged one by
    default; a directory by its absolute path, as a target's) with the lexical mix its record
    names."""
    store.ensure_collection(MODELS, 1)
    record = store.retrieve(MODELS, [ITEMS]).get(ITEMS)
    weight, dim = settings.lexical_weight, settings.lexical_dim
    if record is not None:
        weight, dim = parse_mix(record.payload.get("name")) or (0.0, dim)
    return Generation(0, _absolute(from_model or DEFAULT_MODEL), weight, dim)


def _absolute(model: str) -> str:
    """A model directory by its absolute path (a packaged or hub name as it is): the pointer
    names it for every process, not relative to here, and ./m and /abs/m are one model."""
    return str(Path(model).resolve()) if Path(model).is_dir() else model


def _earlier(generation: Generation) -> dict[str, dict[str, Any]]:
    entry = {
        "model": generation.model,
        "lexical_weight": generation.lexical_weight,
        "lexical_dim": generation.lexical_dim,
    }
    return {**generation.earlier, str(generation.number): entry}


def unverified(store: VectorStore, target: Generation, built: Built) -> str | None:
    """Why the new generation is not whole (every copied item and shopper in it, under its
    model's record), or None."""
    items = store.count(target.collection(ITEMS))
    shoppers = store.count(target.collection(USERS))
    record = store.retrieve(MODELS, [target.collection(ITEMS)]).get(target.collection(ITEMS))
    if items == built.items and shoppers == built.shoppers and record is not None:
        return None
    return (
        f"generation {target.number} holds {items} items and {shoppers} shoppers "
        f"({built.items} and {built.shoppers} written, model recorded: {record is not None}); "
        "not switched: the served generation is untouched"
    )
