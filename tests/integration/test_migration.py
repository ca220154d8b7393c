"""``recstream migrate``: another model's generation built beside the served one while the
consumers run, then switched to (and back) without losing an event or mixing two models' vectors.

Everything is real: the embedded broker, Qdrant Edge, the packaged model and a changed copy of it
(one weight tensor scaled: other vectors, as a fine-tune makes), ``run_consumers`` as ``recstream
run all`` runs it. The embedded store is one process's, so the migration runs in this process
on the consumers' store object, as it would beside them on a Qdrant server.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from api import free_port
from kit import (
    T0,
    assert_lists_match_brute_force,
    committed_count,
    delete_event,
    event_bytes,
    final_lists,
    publish,
    upsert_event,
    wait_for,
)
from models import copy_model, scale_tensor

from encoders import load_encoder
from encoders.text import item_text
from recstream_tools.sample_catalog import sample_items
from schemas.catalog import Item
from stream.collections import ITEMS, USERS
from stream.generations import Generation, GenerationStore, read_pointer
from stream.migration.switch import migrate, rollback
from stream.ranking.profile import history_from_payload
from stream.runner import run_consumers
from stream.settings import Settings
from stream.store.edge import EdgeStore


class Catalogue:
    """The items as the events published so far leave them (what every list must reflect)."""

    def __init__(self) -> None:
        self.live: dict[str, dict[str, Any]] = {}
        self.deleted: set[str] = set()
        self.version: dict[str, int] = {}

    def events(self, items: list[dict[str, Any]], rng: random.Random) -> list[Any]:
        """Creates of ``items``, then an update and a delete of earlier ones."""
        out = []
        for item in items:
            self.version[item["item_id"]] = 1
            self.live[item["item_id"]] = item
            out.append(upsert_event(item, 1, "item.created"))
        earlier = sorted(k for k in self.live if k not in {i["item_id"] for i in items})
        if earlier:
            changed = rng.choice(earlier)
            item = {**self.live[changed], "title": self.live[changed]["title"] + " Pro"}
            self.version[changed] += 1
            self.live[changed] = item
            out.append(upsert_event(item, self.version[changed]))
            gone = rng.choice([k for k in earlier if k != changed])
            self.version[gone] += 1
            del self.live[gone]
            self.deleted.add(gone)
            out.append(delete_event(gone, self.version[gone]))
        return out


class Shoppers:
    """Views by a few shoppers, each event once: what every generation's histories must hold."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: dict[str, list[str]] = {}

    def view(self, items: list[str], rng: random.Random) -> None:
        events = []
        for item in items:
            user = f"u{rng.randrange(5)}"
            event_id = f"v-{self.count()}"
            self.sent.setdefault(user, []).append(event_id)
            at = T0 + timedelta(minutes=len(self.sent[user]))
            events.append(
                {
                    "type": "view",
                    "event_id": event_id,
                    "occurred_at": at.isoformat().replace("+00:00", "Z"),
                    "user_id": user,
                    "item_id": item,
                }
            )
        topic = self.settings.topic_user_events
        assert publish(self.settings, topic, [event_bytes(e) for e in events]) == len(events)

    def count(self) -> int:
        return sum(map(len, self.sent.values()))

    def held(self, view: GenerationStore) -> bool:
        """Every shopper's stored history holds each event sent, once."""
        stored = view.retrieve(USERS, sorted(self.sent))
        return all(
            k in stored
            and sorted(i.event_id for i in history_from_payload(stored[k].payload["history"]))
            == sorted(ids)
            for k, ids in self.sent.items()
        )


def _send(settings: Settings, events: list[Any]) -> None:
    assert publish(settings, settings.topic_items, [event_bytes(e) for e in events]) == len(events)


def _published(settings: Settings, catalogue: Catalogue) -> Callable[[], bool]:
    def done() -> bool:
        lists = final_lists(settings)
        return all(lists.get(k) is not None for k in catalogue.live) and all(
            lists.get(k, None) is None for k in catalogue.deleted
        )

    return done


def test_a_switch_during_a_stream_of_events_loses_nothing_and_never_mixes_models(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Events published while the new generation is copied and right after the switch all reach
    it; every vector it holds is the new model's encoding of the item's latest text; every list
    on the topic at the end is the exact top k of those vectors; a rollback serves the first
    generation again, caught up with what happened meanwhile."""
    settings = make_settings(generation_check_s=0.5, http_host="127.0.0.1", http_port=free_port())
    rng = random.Random(5)
    items = sample_items(48, seed=3)
    catalogue = Catalogue()
    _send(settings, catalogue.events(items[:24], rng))
    shoppers = Shoppers(settings)
    shoppers.view([i["item_id"] for i in items[:24]], rng)
    store = EdgeStore(settings.qdrant_path)
    stop = threading.Event()
    codes: list[int] = []
    runner = threading.Thread(
        target=lambda: codes.append(run_consumers(settings, "all", stop, store)), daemon=True
    )
    runner.start()
    try:
        wait_for(_published(settings, catalogue), what="the first lists")
        first = GenerationStore(store, Generation.configured(settings))
        wait_for(lambda: shoppers.held(first), what="the first histories")
        tuned = copy_model(tmp_path / "tuned")
        scale_tensor(tuned, by=0.25)  # vectors far from the first model's (cosine < 0.8)
        during = catalogue.events(items[24:32], rng)
        sent: list[bool] = []

        def copying(stage: str, n: int) -> None:
            """The served groups' offsets were read and the copy has begun: these events are
            applied to the old generation (and committed there) but not copied."""
            if sent:
                return
            sent.append(True)
            _send(settings, during)
            shoppers.view([e["item"]["item_id"] for e in during if "item" in e], rng)
            wait_for(
                lambda: all(
                    committed_count(settings, group, topic) == count
                    for group, topic, count in (
                        (settings.catalog_group(), settings.topic_items, 24 + len(during)),
                        (settings.behaviour_group(), settings.topic_user_events, shoppers.count()),
                    )
                ),
                what="the old generation's commits of the events sent during the copy",
            )

        new_settings = settings.model_copy(update={"model": str(tuned)})
        done = migrate(new_settings, store, progress=copying)
        assert sent
        _send(settings, catalogue.events(items[32:40], rng))  # the old consumers may take these
        pointer = read_pointer(store)
        assert pointer is not None and pointer.number == 1 and pointer.model == str(tuned)
        assert done.generation.number == 1

        wait_for(_published(settings, catalogue), what="lists after the switch")
        new = GenerationStore(store, pointer)
        _wait_for_vectors(new, new_settings, catalogue)
        wait_for(
            lambda: _lists_exact(settings, new), timeout_s=60, what="exact lists of the new model"
        )
        shoppers.view([e["item"]["item_id"] for e in during if "item" in e], rng)
        wait_for(lambda: shoppers.held(new), what="every shopper event in the new generation")
        _api_serves(settings, catalogue, load_encoder(new_settings).name)

        rollback(settings, store)
        _send(settings, catalogue.events(items[40:], rng))
        _wait_for_vectors(first, settings, catalogue)
        wait_for(lambda: shoppers.held(first), what="every shopper event after the rollback")
        wait_for(lambda: _lists_exact(settings, first), timeout_s=60, what="lists after rollback")
        _api_serves(settings, catalogue, load_encoder(settings).name)
    finally:
        stop.set()
        runner.join(60)
        store.close()
    assert codes == [0]


class Shared:
    """One instance's view of a store other processes write too (as a Qdrant server is): the
    embedded engine underneath, the consumers set up as for a server (store search, list work
    through the topic)."""

    def __init__(self, inner: EdgeStore) -> None:
        self.inner = inner
        self.exclusive = False

    def close(self) -> None:  # the test closes the engine once, at the end
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_two_instances_on_a_shared_store_switch_each_on_its_own_clock(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Two ``run catalog`` instances over one shared store (store search, lists written by the
    lists consumers through the list-work topic), their pointer checks 0.7 and 1.9 s apart:
    events published through the switch reach the new generation, and at the end every list on
    the topic is the exact top k of the new model's vectors (an instance still on the old
    generation publishes nothing once the pointer moved)."""
    rng = random.Random(8)
    items = sample_items(40, seed=9)
    catalogue = Catalogue()
    base = make_settings(neighbour_search="store", list_stage="topic")
    _send(base, catalogue.events(items[:20], rng))
    engine = EdgeStore(base.qdrant_path)
    stop = threading.Event()
    codes: list[int] = []

    def instance(settings: Settings) -> None:
        codes.append(run_consumers(settings, "catalog", stop, Shared(engine)))  # type: ignore[arg-type]

    load_encoder(base)  # its imports done once: two threads importing transformers at once fail
    runners = [
        threading.Thread(
            target=instance,
            args=(base.model_copy(update={"generation_check_s": every}),),
            daemon=True,
        )
        for every in (0.7, 1.9)
    ]
    for runner in runners:
        runner.start()
    try:
        wait_for(_published(base, catalogue), timeout_s=120, what="the first lists")
        tuned = copy_model(tmp_path / "tuned")
        scale_tensor(tuned, by=0.25)
        new_settings = base.model_copy(update={"model": str(tuned)})
        migrate(new_settings, Shared(engine))  # type: ignore[arg-type]
        for start in range(20, 40, 5):  # through both instances' switches
            _send(base, catalogue.events(items[start : start + 5], rng))
            time.sleep(0.5)
        pointer = read_pointer(engine)
        assert pointer is not None and pointer.number == 1
        new = GenerationStore(engine, pointer)
        wait_for(_published(base, catalogue), timeout_s=120, what="lists after the switch")
        _wait_for_vectors(new, new_settings, catalogue)
        wait_for(lambda: _lists_exact(base, new), timeout_s=90, what="exact lists, new model")
    finally:
        stop.set()
        for runner in runners:
            runner.join(60)
        engine.close()
    assert codes == [0, 0]


def _wait_for_vectors(view: GenerationStore, settings: Settings, catalogue: Catalogue) -> None:
    """The generation holds exactly the live items, each with its latest title, its vector the
    generation's model's encoding of the item's text (computed here, apart)."""
    encoder = load_encoder(settings)
    keys = sorted(catalogue.live)
    expected = encoder.encode([item_text(Item.model_validate(catalogue.live[k])) for k in keys])

    differs: list[str] = []

    def matches() -> bool:
        points = {p.key: p for p in view.scroll(ITEMS, with_vectors=True)}
        differs[:] = sorted(set(points) ^ set(keys))
        differs.extend(
            k
            for k in keys
            if k in points and points[k].payload["title"] != catalogue.live[k]["title"]
        )
        differs.extend(
            f"{k} vector {float(points[k].vector @ expected[n]):.4f}"
            for n, k in enumerate(keys)
            if k in points and float(points[k].vector @ expected[n]) < 0.99
        )
        return not differs

    try:
        wait_for(matches, timeout_s=60, what=f"generation {view.generation.number}'s vectors")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: differing {differs[:8]}") from None


def _api_serves(settings: Settings, catalogue: Catalogue, model: str) -> None:
    """The HTTP API of the running process answers from the served generation: each live
    item's similar items are the list on the topic, made by ``model``."""
    lists = final_lists(settings)
    with httpx.Client(base_url=f"http://127.0.0.1:{settings.http_port}", timeout=30) as client:

        def answers() -> bool:
            try:
                found = client.get(f"/v1/items/{sorted(catalogue.live)[0]}/similar")
            except httpx.TransportError:  # the API starting again on the new generation
                return False
            return found.status_code == 200 and found.json()["model"] == model

        wait_for(answers, timeout_s=30, what=f"the API on {model}")
        for key in sorted(catalogue.live):
            body = client.get(f"/v1/items/{key}/similar").json()
            assert body["model"] == model
            got = [(n["item_id"], n["score"]) for n in body["neighbours"]]
            expected = lists[key]
            assert expected is not None
            assert {k for k, _ in got} == {k for k, _ in expected}, key


def _lists_exact(settings: Settings, view: GenerationStore) -> bool:
    try:
        assert_lists_match_brute_force(final_lists(settings), view, settings.neighbours_k)
    except AssertionError:
        return False
    return True
