"""Hybrid similarity: lexical vectors checked against scikit-learn's character n-grams, the fused
cosine against its two parts, and the lists on the topic against the fused score."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
import qdrant_edge as qe
from kit import RunningConsumer, event_bytes, final_lists, publish, upsert_event

from encoders import BertEncoder, Encoder, load_encoder
from encoders.hybrid import HybridEncoder, dense_part, vector_dimension
from encoders.lexical import DIGIT_WEIGHT, MAX_CHARS, lexical_vectors
from encoders.text import item_text
from schemas.catalog import Item
from stream.collections import ITEMS
from stream.settings import Settings
from stream.store.base import point_id
from stream.store.edge import EdgeStore
from stream.store.hybrid import LEXICAL

TEXTS = [
    "Sony BRAVIA KDL-40V4100 40in LCD HDTV",
    "Sony Bravia 40 inch LCD TV KDL40V4100 black",
    "Sony BRAVIA KDL-46W5100 46in LCD HDTV",
    "Samsung LN40A550 40in LCD HDTV",
    "a b cd efg hijk",  # words shorter than the grams
    "Ünïcode café crème brûlée dessert set, 4 pièces",
    "café crème",
    "Yoga mat, 6 mm, non-slip; yoga mat bag included. Yoga!",
    "Garden hose reel. " + "A sturdy reel for 30 m of hose, wall-mounted, rust-free. " * 5,
]


def reference_cosines(texts: list[str]) -> np.ndarray:
    """The lexical cosines computed exactly (no hashing) from scikit-learn's char_wb grams."""
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(
        analyzer="char_wb",
        ngram_range=(3, 5),
        preprocessor=lambda t: re.sub(r"[\W_]+", " ", t)[:MAX_CHARS].lower(),
    ).fit(texts)
    matrix = counts.transform(texts).astype(np.float64).toarray()
    digit = np.array([bool(re.search(r"\d", g)) for g in counts.get_feature_names_out()])
    weights = np.where(matrix > 0, 1.0 + np.log(np.maximum(matrix, 1.0)), 0.0)
    weights *= np.where(digit, DIGIT_WEIGHT, 1.0)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    return weights @ weights.T


def test_lexical_cosines_match_exact_character_grams() -> None:
    """Hashed into 2^20 dimensions, collisions are rare: the cosines are scikit-learn's char_wb
    3-5-gram cosines (sublinear counts, digits weighted) of the texts with punctuation made
    spaces, cut to their first MAX_CHARS characters."""
    vectors = lexical_vectors(TEXTS, 1 << 20)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors @ vectors.T, reference_cosines(TEXTS), atol=0.01)


def test_a_texts_lexical_vector_is_its_own() -> None:
    """A row does not depend on the texts beside it; case does not count; grams stay inside
    words (``"ab cd"`` shares nothing with ``"abcd"``'s 4- and 5-grams)."""
    together = lexical_vectors(TEXTS, 256)
    for row, text in enumerate(TEXTS):
        np.testing.assert_array_equal(lexical_vectors([text], 256)[0], together[row])
    upper = lexical_vectors([TEXTS[0].upper(), TEXTS[0]], 256)
    np.testing.assert_allclose(upper[0], upper[1], atol=1e-6)
    split, joined = lexical_vectors(["ab cd", "abcd"], 1 << 16)
    # " ab" and "cd " of 6 and 9 grams; none of "abcd"'s spans the gap
    assert float(split @ joined) == pytest.approx(2 / np.sqrt(6 * 9), abs=1e-6)


def test_hybrid_cosine_is_the_weighted_sum_of_its_parts(encoder: Encoder) -> None:
    """The consumers' encoder (the defaults): unit rows whose cosine is exactly
    ``(1 - w) x dense cosine + w x lexical cosine``."""
    settings = Settings()
    assert isinstance(encoder, HybridEncoder) and encoder.weight == settings.lexical_weight
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), vector_dimension(settings))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    dense = dense_part(encoder).encode(TEXTS)
    lexical = lexical_vectors(TEXTS, settings.lexical_dim)
    w = settings.lexical_weight
    fused = (1 - w) * (dense @ dense.T) + w * (lexical @ lexical.T)
    np.testing.assert_allclose(vectors @ vectors.T, fused, atol=1e-5)
    assert encoder.name == "all-MiniLM-L6-v2+chargrams1024@0.5"


def test_weight_zero_is_the_model_alone() -> None:
    encoder = load_encoder(Settings(lexical_weight=0))
    assert encoder is dense_part(encoder) and encoder.dim == 384
    assert vector_dimension(Settings(lexical_weight=0)) == 384


@pytest.mark.integration
@pytest.mark.parametrize("search", ["memory", "store"])
def test_lists_on_the_topic_rank_by_the_fused_score(
    make_settings: Callable[..., Settings], search: str
) -> None:
    """Through the broker and the catalog consumer, in both search modes: every score on
    items.neighbours is the fused score computed here from the model and the lexical vectors
    apart, lists are in its order, and the list of the first TV starts with its twin (same
    model number written another way), which the model alone ranks below the sibling model.
    The store holds each item's lexical part as a sparse vector. (float32: a text's vector
    does not depend on the texts batched with it, so the scores can be recomputed here to
    1e-4.)"""
    items = [
        {"item_id": f"tv-{n}", "title": title, "price": 499.0} for n, title in enumerate(TEXTS[:4])
    ]
    items += [{"item_id": "mat", "title": TEXTS[-1], "price": 20.0}]
    settings = make_settings(neighbour_search=search)
    model = BertEncoder(quantize="none", device="cpu")
    encoder = HybridEncoder(model, settings.lexical_weight, settings.lexical_dim)
    publish(settings, settings.topic_items, (event_bytes(upsert_event(i, 1)) for i in items))
    store = EdgeStore(settings.qdrant_path)
    try:
        with RunningConsumer(settings, encoder, store) as running:
            running.wait_caught_up()
        [record] = store._shard(ITEMS).retrieve([point_id("mat")], False, True)
        assert isinstance(record.vector, dict)
        sparse = record.vector[LEXICAL]
        assert isinstance(sparse, qe.SparseVector) and 0 < len(sparse.indices) < 300
        assert len(record.vector["text"]) == model.dim  # type: ignore[arg-type]
    finally:
        store.close()
    lists = final_lists(settings)
    texts = [item_text(Item.model_validate(i)) for i in items]
    dense = model.encode(texts)
    lexical = lexical_vectors(texts, settings.lexical_dim)
    w = settings.lexical_weight
    fused = (1 - w) * (dense @ dense.T) + w * (lexical @ lexical.T)
    row = {i["item_id"]: n for n, i in enumerate(items)}
    for key, neighbours in lists.items():
        assert neighbours is not None
        for other, score in neighbours:
            assert score == pytest.approx(fused[row[key], row[other]], abs=1e-4), (key, other)
        ranked = sorted((o for o in row if o != key), key=lambda o: -fused[row[key], row[o]])
        assert [o for o, _ in neighbours] == ranked
    assert lists["tv-0"] is not None and lists["tv-0"][0][0] == "tv-1"
    assert (dense @ dense.T)[0, 2] > (dense @ dense.T)[0, 1]  # the model alone: the sibling


def test_a_lone_surrogate_is_a_code_point_not_an_error() -> None:
    """No catalogue event holds one (the schema refuses it), but a search query may."""
    [row] = lexical_vectors(["red mug \ud800 set"], 64)
    assert float(np.linalg.norm(row)) == pytest.approx(1.0, abs=1e-6)
