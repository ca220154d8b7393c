"""``recstream train encoder``: pairs from files and categories as the consumers' texts, batches
without false negatives, a refusal when there are too few pairs, and on a tiny data set a model
directory the encoder loads (ONNX int8 included) and encodes with."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from encoders import load_encoder
from encoders.hybrid import vector_dimension
from encoders.text import item_text
from recstream_tools.training.pairs import (
    MIN_TRAIN_PAIRS,
    Pair,
    batches,
    category_pairs,
    co_purchase_pairs,
    hold_out,
    load_items,
    load_pairs,
)
from stream import cli
from stream.ranking.profile import Interaction
from stream.settings import Settings

ITEMS = """item_id,title,brand,category,description
sku-1,Sony PSLX350H turntable,Sony,Audio > Turntables,Belt drive
sku-2,Sony PSLX300 turntable,Sony,Audio > Turntables,
sku-3,Bose Acoustimass 5 speakers,Bose,Audio > Speakers,
sku-4,Bose Companion 2 speakers,Bose,Audio > Speakers,
sku-5,,Nameless,Audio,
"""


def test_pairs_file_resolves_item_ids_to_the_texts_the_consumer_embeds(tmp_path: Path) -> None:
    """item_a, item_b rows become the items' texts; text rows stay; bad rows are reported."""
    (tmp_path / "items.csv").write_text(ITEMS)
    items, rejected_items = load_items(tmp_path / "items.csv")
    assert sorted(items) == ["sku-1", "sku-2", "sku-3", "sku-4"]
    assert rejected_items.count == 1 and rejected_items.first[0].startswith("line 6: title")
    (tmp_path / "pairs.jsonl").write_text(
        '{"item_a": "sku-1", "item_b": "sku-2"}\n'
        '{"text_a": "red mug", "text_b": "crimson cup"}\n'
        '{"item_a": "sku-1", "item_b": "sku-9"}\n'
        '{"item_a": "sku-1"}\n'
        "not json\n"
    )
    pairs, rejected = load_pairs(tmp_path / "pairs.jsonl", items)
    assert pairs == [
        Pair(item_text(items["sku-1"]), item_text(items["sku-2"])),
        Pair("red mug", "crimson cup"),
    ]
    assert pairs[0].text_a == (
        "Sony PSLX350H turntable. Brand: Sony. Category: Audio > Turntables. Belt drive"
    )
    assert rejected.count == 3
    assert rejected.first[0] == "line 3: no item 'sku-9' in the items file"
    assert rejected.first[1] == "line 4: needs text_a and text_b, or item_a and item_b"


def test_category_pairs_pair_items_of_the_same_category_only(tmp_path: Path) -> None:
    """Two categories of two items: one pair each, never across categories."""
    (tmp_path / "items.csv").write_text(ITEMS)
    items, _ = load_items(tmp_path / "items.csv")
    pairs = category_pairs(items.values(), limit=10, seed=1)
    assert len(pairs) == 2
    for pair in pairs:
        assert ("Turntables" in pair.text_a) == ("Turntables" in pair.text_b)


def test_co_purchase_pairs_are_items_bought_together_in_two_orders() -> None:
    """Orders are one shopper's purchases at one time: a and b together twice make a pair, a and
    c once do not, views never count, and the most strongly associated pair comes first."""
    t1, t2, t3 = (datetime(2011, 1, d, tzinfo=UTC) for d in (1, 2, 3))

    def bought(item: str, at: datetime, kind: str = "purchase") -> Interaction:
        return Interaction(f"{item}-{at.day}", item, kind, at)

    histories = {
        "u1": [bought("a", t1), bought("b", t1), bought("c", t1), bought("a", t2), bought("b", t2)],
        "u2": [bought("a", t3), bought("b", t3), bought("d", t3), bought("c", t3, "view")],
        "u3": [bought("b", t1), bought("d", t1), bought("b", t2), bought("d", t3)],
    }
    texts = {i: f"item {i}" for i in "abcd"}
    assert co_purchase_pairs(histories, texts, limit=10) == [
        Pair("item a", "item b"),
        Pair("item b", "item d"),
    ]
    assert co_purchase_pairs(histories, texts, limit=1) == [Pair("item a", "item b")]


def test_co_purchase_pairs_rank_by_association_and_spread_over_items() -> None:
    """A best seller h is bought with x three times and with w twice, in 14 orders in all;
    y and z are bought together twice and never apart; v is bought with t twice, in 22 orders.
    By counts h-x would come first; by association (orders together over the geometric mean of
    each item's orders) y-z does: 2 / sqrt(2 * 2) = 1.0, then h-x 3 / sqrt(14 * 3) = 0.46, h-w
    2 / sqrt(14 * 2) = 0.38, v-t 2 / sqrt(22 * 2) = 0.30. With one pair per text, h keeps only
    its strongest and v-t still follows. Two items of one text (s1, s2) never make a pair."""
    days = [datetime(2011, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(60)]

    def order(user: str, at: datetime, *items: str) -> list[Interaction]:
        return [Interaction(f"{user}-{i}-{at.date()}", i, "purchase", at) for i in items]

    others = [f"o{n}" for n in range(29)]  # each in one order: pairs with them count once
    histories = {
        "u1": [i for n in range(3) for i in order("u1", days[n], "h", "x")]
        + [i for n in range(2) for i in order("u1", days[3 + n], "h", "w")],
        "u2": [i for n in range(9) for i in order("u2", days[n], "h", others[n])],
        "u3": [i for n in range(2) for i in order("u3", days[n], "y", "z")],
        "u4": [i for n in range(2) for i in order("u4", days[n], "v", "t")]
        + [i for n in range(20) for i in order("u4", days[2 + n], "v", others[9 + n])],
        "u5": [i for n in range(3) for i in order("u5", days[n], "s1", "s2")],
    }
    texts = {i: f"item {i}" for i in ["h", "t", "v", "w", "x", "y", "z", *others]}
    texts |= {"s1": "item s", "s2": "item s"}
    assert co_purchase_pairs(histories, texts, limit=10) == [
        Pair("item y", "item z"),
        Pair("item h", "item x"),
        Pair("item h", "item w"),
        Pair("item t", "item v"),
    ]
    assert co_purchase_pairs(histories, texts, limit=10, per_text=1) == [
        Pair("item y", "item z"),
        Pair("item h", "item x"),
        Pair("item t", "item v"),
    ]


def test_batches_never_hold_a_text_twice_and_keep_every_pair() -> None:
    """A text shared by two pairs would be a false negative in one batch: they are split up."""
    pairs = [Pair(f"a{n % 5}", f"b{n}") for n in range(40)]
    out = batches(pairs, 8, random.Random(0))
    assert sorted((p.text_a, p.text_b) for b in out for p in b) == sorted(
        (p.text_a, p.text_b) for p in pairs
    )
    for batch in out:
        texts = [t for p in batch for t in (p.text_a, p.text_b)]
        assert len(texts) == len(set(texts))


def test_hold_out_is_seeded_and_distinct() -> None:
    """The same seed holds out the same pairs; duplicates count once."""
    pairs = [Pair(f"a{n}", f"b{n}") for n in range(20)] + [Pair("a0", "b0")]
    train, held = hold_out(pairs, 0.2, seed=3)
    assert (train, held) == hold_out(pairs, 0.2, seed=3)
    assert len(held) == 4 and len(train) == 16
    assert not set(train) & set(held)


def _pairs_file(path: Path, count: int) -> Path:
    colours = ["red", "blue", "green", "black", "white", "yellow", "grey", "pink", "brown", "navy"]
    kinds = ["mug", "kettle", "lamp"]
    lines = [
        json.dumps(
            {
                "text_a": f"{colours[n % 10]} ceramic {kinds[n // 10 % 3]} model {n}",
                "text_b": f"{kinds[n // 10 % 3]} in {colours[n % 10]}, ref {n}",
            }
        )
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_too_few_pairs_are_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Five pairs: exit 2, a message naming the minimum and the sources, no model directory."""
    pairs = _pairs_file(tmp_path / "pairs.jsonl", 5)
    out = tmp_path / "model"
    code = cli.main(["train", "encoder", f"--pairs={pairs}", f"--out={out}"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"fine-tuning needs at least {MIN_TRAIN_PAIRS}" in err
    assert "give more pairs (--pairs, --same-category with --items" in err
    assert not out.exists()


@pytest.mark.slow
def test_fine_tuning_writes_a_model_directory_the_encoder_serves(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """20 pairs, 1 epoch, 16 tokens: the directory loads through load_encoder on the ONNX int8
    path, encodes to unit vectors, differs from the packaged model, and records its training."""
    pairs = _pairs_file(tmp_path / "pairs.jsonl", 20)
    out = tmp_path / "model"
    code = cli.main(
        [
            "train",
            "encoder",
            f"--pairs={pairs}",
            f"--out={out}",
            "--epochs=1",
            "--batch-size=8",
            "--max-length=16",
            "--holdout=0.2",
            "--seed=7",
            f"--encoder-cache={tmp_path / 'onnx'}",
            "--log-level=warning",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert f"RECSTREAM_MODEL={out}" in printed
    record = json.loads((out / "recstream-training.json").read_text())
    assert record["pairs"]["train"] == 16 and record["pairs"]["held_out"] == 4
    assert set(record["after"]["held_out"]) == {"R@1", "R@10"}
    settings = Settings(model=str(out), encoder_cache=str(tmp_path / "onnx"))
    tuned = load_encoder(settings)
    assert tuned.runtime == "onnx"
    texts = ["red ceramic mug", "kettle in blue"]
    vectors = tuned.encode(texts)
    assert vectors.shape == (2, vector_dimension(settings))  # the model's 384 and the n-grams'
    assert "+chargrams" in tuned.name
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    packaged = load_encoder(Settings(encoder_cache=str(tmp_path / "onnx"))).encode(texts)
    assert not np.allclose(vectors, packaged, atol=1e-3)
