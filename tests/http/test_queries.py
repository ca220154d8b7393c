"""The query endpoints against what the consumers wrote: a real catalogue and real behaviour
run through the real catalog, behaviour and item-stats consumers (embedded broker and store,
the packaged model), then queried over HTTP from a real uvicorn server. Answers are checked
against numpy over the stored vectors, the published lists and the recommender itself."""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from api import serving
from faults import FlakyStore
from kit import (
    RunningConsumer,
    RunningConsumers,
    behaviour_consumers,
    created,
    delete_event,
    event_bytes,
    final_lists,
    flipkart_items,
    publish,
    store_vectors,
)

from encoders import Encoder
from encoders.text import clean
from recstream_tools.sample_behaviour import sample_behaviour
from recstream_tools.sample_catalog import sample_items
from stream.collections import USERS
from stream.ranking.profile import history_from_payload
from stream.ranking.recommender import Recommender
from stream.settings import Settings
from stream.store.edge import EdgeStore

pytestmark = pytest.mark.integration

SASL_PASSWORD = "Hq5Rt8Wn2Lx7Vb"
QDRANT_API_KEY = "Kc4Pm9Zs3Dy6Fj"
TOL = 1e-4


@dataclass
class Shop:
    settings: Settings
    store: EdgeStore
    client: httpx.Client
    items: dict[str, dict[str, Any]]
    """The live items as published (the deleted one left out)."""
    deleted: str
    users: list[str]
    keys: list[str]
    vectors: np.ndarray
    """The stored vectors (unit rows), in ``keys`` order."""


@pytest.fixture(scope="module")
def shop(
    bootstrap: str, encoder: Encoder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Shop]:
    """150 real products (a quarter out of stock, some without a price), one deleted, and
    30 shoppers' behaviour, all through the running consumers; then the API on their store."""
    tag = uuid.uuid4().hex[:10]
    settings = Settings(
        kafka_bootstrap=bootstrap,
        group_id=f"test-{tag}",
        topic_items=f"items-{tag}",
        topic_neighbours=f"neighbours-{tag}",
        topic_user_events=f"events-{tag}",
        topic_recommendations=f"recs-{tag}",
        qdrant_path=str(tmp_path_factory.mktemp("http") / "qdrant"),
        kafka_session_timeout_ms=6_000,
        kafka_max_poll_interval_ms=60_000,
        batch_max_items=64,
        batch_max_wait_ms=100,
    )
    items = flipkart_items(150) or sample_items(150, seed=41)
    rng = random.Random(41)
    for n, item in enumerate(items):
        item["in_stock"] = n % 4 != 1
        if n % 9 == 4:
            item["price"] = None
    deleted = items[-1]["item_id"]
    behaviour = sample_behaviour(items[:-1], users=30, seed=42)
    rng.shuffle(behaviour)
    publish(settings, settings.topic_items, created(items))
    publish(settings, settings.topic_items, [event_bytes(delete_event(deleted, 2))])
    publish(settings, settings.topic_user_events, map(event_bytes, behaviour))
    store = EdgeStore(settings.qdrant_path)
    consumers = [
        *RunningConsumer(settings, encoder, store).consumers,
        *behaviour_consumers(settings, store, encoder.dim),
    ]
    with RunningConsumers(consumers) as running:
        running.wait_caught_up()
    keys, vectors = store_vectors(store)
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    try:
        with serving(settings, store, encoder=encoder) as client:
            yield Shop(
                settings,
                store,
                client,
                {i["item_id"]: i for i in items[:-1]},
                deleted,
                sorted({e["user_id"] for e in behaviour}),
                keys,
                vectors,
            )
    finally:
        store.close()


def _passes(item: dict[str, Any], filters: dict[str, Any]) -> bool:
    """Whether a published item passes the API's filters (written from the README's rules)."""
    price = item.get("price")
    if "in_stock" in filters and item.get("in_stock", True) != filters["in_stock"]:
        return False
    if "min_price" in filters and (price is None or price < filters["min_price"]):
        return False
    if "max_price" in filters and (price is None or price > filters["max_price"]):
        return False
    return "category" not in filters or filters["category"] in (item.get("categories") or [])


def _expected(shop: Shop, query: np.ndarray, k: int, keep: Any) -> list[tuple[str, float]]:
    """numpy's top k of the stored items that ``keep`` accepts, by cosine with ``query``."""
    scores = shop.vectors @ query
    ranked = sorted(
        ((shop.keys[j], float(scores[j])) for j in range(len(shop.keys)) if keep(shop.keys[j])),
        key=lambda pair: -pair[1],
    )
    return ranked[:k]


def _assert_same_top_k(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    """Same length, same scores position by position, best first; the same items except
    where scores tie (within TOL) with the last one listed."""
    assert len(got) == len(expected)
    assert all(a >= b - 1e-6 for (_, a), (_, b) in itertools.pairwise(got)), "not descending"
    for (_, g), (_, e) in zip(got, expected, strict=True):
        assert abs(g - e) < TOL, (got, expected)
    if expected:
        last = expected[-1][1]
        sure = {i for i, s in expected if s > last + TOL}
        assert sure <= {i for i, _ in got}, (got, expected)


def _vector(shop: Shop, key: str) -> np.ndarray:
    return shop.vectors[shop.keys.index(key)]


def _pairs(body: dict[str, Any], field: str = "neighbours") -> list[tuple[str, float]]:
    return [(n["item_id"], n["score"]) for n in body[field]]


def test_similar_items_are_the_exact_top_k_and_the_published_list(shop: Shop) -> None:
    """For every live item, the endpoint's list (no filter, the default k) is numpy's cosine
    top-k over the stored vectors without the item, and the list items.neighbours holds."""
    published = final_lists(shop.settings)
    k = shop.settings.neighbours_k
    assert sorted(shop.keys) == sorted(shop.items)
    for key in shop.keys:
        response = shop.client.get(f"/v1/items/{key}/similar")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["item_id"] == key and body["item_version"] == 1
        assert body["generated_at"].endswith("Z")
        got = _pairs(body)
        _assert_same_top_k(got, _expected(shop, _vector(shop, key), k, lambda o, key=key: o != key))
        listed = published[key]
        assert listed is not None
        _assert_same_top_k(got, listed)


FILTERS = [
    {"in_stock": True},
    {"in_stock": False},
    {"min_price": 300.0, "max_price": 1500.0},
    {"max_price": 500.0},
    {"min_price": 2000.0},
    {"in_stock": True, "max_price": 1000.0},
]


def test_every_similar_item_passes_the_filters_and_is_the_filtered_top_k(shop: Shop) -> None:
    """With stock, price and category filters (alone and together), every item returned passes
    them, and the list is numpy's top k among the items that pass; a filter that few items
    pass gives them all."""
    rng = random.Random(7)
    for key in rng.sample(shop.keys, 12):
        category = (shop.items[key].get("categories") or [None])[0]
        cases = [*FILTERS, {"category": category}, {"category": category, "in_stock": True}]
        for filters in cases:
            if filters.get("category") is None and "category" in filters:
                continue
            params = {**filters, "k": 15}
            body = shop.client.get(f"/v1/items/{key}/similar", params=params).json()
            got = _pairs(body)
            for other, _ in got:
                assert _passes(shop.items[other], filters), (key, filters, other)

            def keep(o: str, key: str = key, filters: dict[str, Any] = filters) -> bool:
                return o != key and _passes(shop.items[o], filters)

            _assert_same_top_k(got, _expected(shop, _vector(shop, key), 15, keep))


def test_unknown_and_deleted_items_are_a_json_404(shop: Shop) -> None:
    """An item the store never held, and one deleted, are 404 with a JSON error message."""
    for key in ("no-such-item", shop.deleted):
        response = shop.client.get(f"/v1/items/{key}/similar")
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "not_found" and key in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/v1/items/{item}/similar?k=0", None),
        ("GET", "/v1/items/{item}/similar?k=1001", None),
        ("GET", "/v1/items/{item}/similar?k=ten", None),
        ("GET", "/v1/items/{item}/similar?min_price=-1", None),
        ("GET", "/v1/items/{item}/similar?max_price=nan", None),
        ("GET", "/v1/items/{item}/similar?min_price=20&max_price=10", None),
        ("GET", "/v1/items/{item}/similar?in_stock=perhaps", None),
        ("GET", "/v1/items/{item}/similar?category=", None),
        ("GET", "/v1/users/u-00001/recommendations?n=0", None),
        ("GET", "/v1/users/u-00001/recommendations?n=21", None),
        ("POST", "/v1/search", {"k": 3}),
        ("POST", "/v1/search", {"query": "", "k": 3}),
        ("POST", "/v1/search", {"query": " \u200b ", "k": 3}),
        ("POST", "/v1/search", {"query": "towel", "k": 0}),
        ("POST", "/v1/search", {"query": "towel", "min_price": "cheap"}),
        ("POST", "/v1/search", {"query": "towel", "max_pryce": 10}),
        ("POST", "/v1/search", {"query": ["towel"]}),
        ("POST", "/v1/search", "not json"),
    ],
)
def test_bad_parameters_are_a_json_422(shop: Shop, method: str, path: str, payload: object) -> None:
    """Out-of-range, unparsable, inconsistent, missing or unknown parameters are 422 with a
    JSON message naming what is wrong, never a 500."""
    url = path.format(item=shop.keys[0])
    if isinstance(payload, str):
        response = shop.client.request(method, url, content=payload)
    else:
        response = shop.client.request(method, url, json=payload)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request" and body["message"]


def test_search_finds_each_product_by_its_own_title(shop: Shop, encoder: Encoder) -> None:
    """A product's own title as the query returns that product first, among 149 real products;
    the list is numpy's top k by cosine of the query's vector (the same encoder) with the stored
    vectors, with titles; filters hold on search too."""
    rng = random.Random(3)
    titles = [shop.items[k]["title"] for k in shop.keys]
    unique = [k for k, t in zip(shop.keys, titles, strict=True) if titles.count(t) == 1]
    for key in rng.sample(unique, 15):  # a title two items share cannot name one of them
        title = shop.items[key]["title"]
        response = shop.client.post("/v1/search", json={"query": title, "k": 5})
        assert response.status_code == 200, response.text
        found = response.json()["items"]
        assert found[0]["item_id"] == key, (title, found)
        assert [f["title"] for f in found] == [shop.items[f["item_id"]]["title"] for f in found]
        query = encoder.encode([clean(title)])[0]
        expected = _expected(shop, query, 5, lambda o: True)
        _assert_same_top_k([(f["item_id"], f["score"]) for f in found], expected)
    filters = {"in_stock": False, "max_price": 800.0}
    found = shop.client.post("/v1/search", json={"query": "cotton", "k": 20, **filters}).json()
    assert found["items"]
    assert all(_passes(shop.items[f["item_id"]], filters) for f in found["items"])


def test_recommendations_are_the_recommenders_on_the_stored_history(shop: Shop) -> None:
    """Each shopper's list is what ``Recommender.recommend`` gives their stored history (the
    behaviour consumer's computation), in the users.recommendations message format, cut to n;
    a shopper without history gets an empty list."""
    recommender = Recommender(shop.settings, shop.store)
    try:
        stored = shop.store.retrieve(USERS, shop.users)
        assert set(stored) == set(shop.users)
        for user in shop.users:
            history = history_from_payload(stored[user].payload["history"])
            expected = [
                {
                    "item_id": r.item_id,
                    "score": round(r.score, 6),
                    "components": {k: round(v, 6) for k, v in r.components.items()},
                }
                for r in recommender.recommend(history).ranked
            ]
            body = shop.client.get(f"/v1/users/{user}/recommendations").json()
            assert body["user_id"] == user and body["generated_at"].endswith("Z")
            assert expected and body["items"] == expected
            top = shop.client.get(f"/v1/users/{user}/recommendations", params={"n": 3}).json()
            assert top["items"] == expected[:3]
    finally:
        recommender.close()
    nobody = shop.client.get("/v1/users/nobody/recommendations")
    assert nobody.status_code == 200 and nobody.json()["items"] == []


def test_no_secret_appears_in_any_response(
    shop: Shop, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Kafka password and the Qdrant API key the process was given (RECSTREAM_ variables)
    appear in no response: answers, errors, readiness with the store down, metrics, OpenAPI,
    docs."""
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY", QDRANT_API_KEY)
    given = shop.settings.model_dump(exclude={"kafka_sasl_password", "qdrant_api_key"})
    served = Settings(**given)
    assert served.qdrant_api_key is not None
    assert served.qdrant_api_key.get_secret_value() == QDRANT_API_KEY
    flaky = FlakyStore(shop.store)
    item = shop.keys[0]
    requests: list[tuple[str, str, Any]] = [
        ("GET", "/healthz", None),
        ("GET", "/readyz", None),
        ("GET", "/metrics", None),
        ("GET", "/openapi.json", None),
        ("GET", "/docs", None),
        ("GET", f"/v1/items/{item}/similar?in_stock=true", None),
        ("GET", "/v1/items/unknown/similar", None),
        ("GET", f"/v1/items/{item}/similar?k=-1", None),
        ("GET", f"/v1/users/{shop.users[0]}/recommendations", None),
        ("GET", "/v1/users/x/recommendations?n=999", None),
        ("POST", "/v1/search", {"query": "watch", "k": 3}),
        ("POST", "/v1/search", {"query": 3}),
        ("GET", "/nowhere", None),
    ]
    bodies = []
    with serving(served, flaky, encoder=encoder) as client:
        for failing in (False, True):
            if failing:
                flaky.failing.set()
            for method, url, payload in requests:
                response = client.request(method, url, json=payload)
                assert response.status_code != 500, (url, response.text)
                bodies.append(response.text)
        flaky.failing.clear()
    assert any("vector store does not answer" in b for b in bodies)
    for body in bodies:
        for secret in (SASL_PASSWORD, QDRANT_API_KEY):
            assert not any(secret[i : i + 5] in body for i in range(len(secret) - 4))
