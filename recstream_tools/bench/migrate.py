"""``recstream bench migrate``: how fast ``recstream migrate`` builds a new generation.

A store of ``items`` products (named like the shared data's, as ``bench e2e`` makes them) and
``shoppers`` histories of five items each is filled first with the settings' model, as the
consumers would have (not timed). Then the build of generation 1 (every item embedded again
from its stored text, every shopper's profile computed again, the counts verified) is timed
with the target model settings (by default the same model at another lexical weight: every
vector changes, as with a fine-tune), beside that encoder's encode-only rate on the same texts
in the same process. No broker: the offsets a migration reads and commits cost a few round
trips.

With ``layout``, the served generation keeps its hybrid vectors whole (one dense vector, as
stores made before sparse vectors) and generation 1 has the same settings: the move to the
sparse layout, which copies every vector; then, for comparison, generation 2 is built the way
that move was made before (every item embedded again).
"""

from __future__ import annotations

import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from recstream_tools.bench.corpus import product_items
from recstream_tools.bench.report import LoadMonitor, figure, new_result, write_outputs
from stream.settings import Settings

NAME = "migrate"
_PAGE = 256


def run(
    settings: Settings,
    items: int,
    shoppers: int,
    target: Settings,
    out_dir: Path,
    data: Path | None = None,
    layout: bool = False,
) -> dict[str, Any]:
    from encoders import load_encoder
    from encoders.hybrid import vector_layout
    from encoders.text import item_text
    from schemas.catalog import Item
    from stream.collections import ITEMS, ensure_collections
    from stream.generations import Generation, GenerationStore, reserve
    from stream.migration.build import build
    from stream.migration.switch import unverified
    from stream.runner import check_store_model
    from stream.store.edge import EdgeStore

    catalogue, sources = product_items(items, data) if data is not None else product_items(items)
    texts = [item_text(Item.model_validate(i)) for i in catalogue]
    with tempfile.TemporaryDirectory(prefix="recstream-bench-migrate-") as tmp:
        store = EdgeStore(str(Path(tmp) / "qdrant"))
        try:
            source = Generation.configured(settings)
            if layout:
                if settings.lexical_weight <= 0:
                    raise ValueError("--layout moves hybrid vectors: a lexical weight above 0")
                target = settings
                ensure_collections(store, vector_layout(settings)[0])  # whole: no sparse part
            check_store_model(settings, GenerationStore(store, source))
            fill_s = _fill(settings, store, texts, shoppers)
            encoder = load_encoder(target)
            encoder.encode(texts[:_PAGE])  # warm: the ONNX export of a new model is not timed
            started = time.perf_counter()
            encoder.encode(texts)
            encode_s = time.perf_counter() - started
            generations = []
            with LoadMonitor() as load:
                for with_encoder in [False, True] if layout else [True]:
                    number = reserve(store, source)
                    generation = Generation(
                        number, target.model, target.lexical_weight, target.lexical_dim
                    )
                    started = time.perf_counter()
                    made = encoder if with_encoder else None
                    built = build(settings, store, source, generation, made)
                    wrong = unverified(store, generation, built)
                    if layout and not GenerationStore(store, generation).sparse_width(ITEMS):
                        wrong = f"generation {number} was not built in the sparse layout"
                    generations.append((time.perf_counter() - started, built.copied))
                    if wrong is not None:
                        break
            build_s = generations[0][0]
        finally:
            store.close()
    if wrong is not None:
        raise RuntimeError(wrong)
    result = new_result(
        NAME,
        model=settings.model,
        device="cpu",
        items=len(texts),
        shoppers=shoppers,
        corpus=sources,
        source_mix=[settings.lexical_weight, settings.lexical_dim],
        target={
            "model": target.model,
            "lexical_weight": target.lexical_weight,
            "lexical_dim": target.lexical_dim,
        },
        fill_s=round(fill_s, 1),
        build_s=round(build_s, 2),
        build_items_per_s=round(len(texts) / build_s, 1),
        copied=generations[0][1],
        embedded_again_s=round(generations[1][0], 2) if layout else None,
        encode_only_s=round(encode_s, 2),
        encode_only_items_per_s=round(len(texts) / encode_s, 1),
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, NAME, out_dir, lambda: _plot(result))]
    return result


def summary(result: dict[str, Any]) -> str:
    how = "vectors copied" if result.get("copied") else "embedded again"
    again = result.get("embedded_again_s")
    versus = f" (embedding them again instead: {again:.1f} s)" if again is not None else ""
    return (
        f"migrate build of {result['items']} items and {result['shoppers']} shoppers, {how}: "
        f"{result['build_s']:.1f} s ({result['build_items_per_s']:.1f} items/s){versus}, the "
        f"encoder alone {result['encode_only_items_per_s']:.1f} texts/s; others' CPU share "
        f"{result['load'].get('others_cpu_share', '?')}"
    )


def _fill(settings: Settings, store: Any, texts: list[str], shoppers: int) -> float:
    """The served generation as the consumers leave it: items with their text, shoppers with
    histories."""
    from encoders import load_encoder
    from stream.collections import ITEMS, USERS
    from stream.ranking.profile import Interaction, history_to_payload
    from stream.store import StoredPoint

    started = time.perf_counter()
    encoder = load_encoder(settings)
    keys = [f"sku-{n:06d}" for n in range(len(texts))]
    for start in range(0, len(texts), _PAGE):
        page = texts[start : start + _PAGE]
        vectors = encoder.encode(page)
        store.upsert(
            ITEMS,
            [
                StoredPoint(k, {"item_id": k, "title": t[:60], "text": t, "model": encoder.name}, v)
                for k, t, v in zip(keys[start : start + _PAGE], page, vectors, strict=True)
            ],
        )
    rng = random.Random(0)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    points = []
    for n in range(shoppers):
        history = [
            Interaction(f"e{n}-{m}", rng.choice(keys), "view", t0 + timedelta(minutes=m))
            for m in range(5)
        ]
        payload = {"user_id": f"u{n}", "history": history_to_payload(history)}
        points.append(StoredPoint(f"u{n}", payload, np.ones(encoder.dim, dtype=np.float32)))
    for start in range(0, len(points), _PAGE):
        store.upsert(USERS, points[start : start + _PAGE])
    return time.perf_counter() - started


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(width=6.0, height=3.2)
    ax = axes[0][0]
    labels = ["encoder alone", "migrate build"]
    values = [result["encode_only_items_per_s"], result["build_items_per_s"]]
    if result.get("embedded_again_s"):  # --layout: the copy, and embedding again instead
        labels = [*labels[:1], "embedding again", "migrate build (copied)"]
        values = [*values[:1], result["items"] / result["embedded_again_s"], values[1]]
    ax.barh(labels, values, color=["0.6", *["tab:blue"] * (len(values) - 1)])
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.0f}", va="center")
    ax.set_xlabel("items per second")
    ax.set_title(f"recstream migrate: {result['items']:,} items, {result['shoppers']:,} shoppers")
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
