"""``recstream train encoder``: gather pairs, measure, fine-tune, write the model, measure again.

The model directory written holds what the encoder loads (``config.json``, the weights, the
tokenizer, ``modules.json`` with Transformer, Pooling and Normalize) and
``recstream-training.json`` (where it came from, on what, and the figures before and after).
"after" is measured through :func:`encoders.load_encoder` on the new directory: the same ONNX
export and int8 path the consumers take, so a directory that cannot serve fails here.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from pydantic import ValidationError

from encoders import Encoder, load_encoder
from encoders.bert import resolve_model
from encoders.device import resolve_device
from encoders.hybrid import dense_part
from encoders.text import item_text
from recstream_tools.evaluation.catalogues import AbtBuy, load_abt_buy, split_pairs
from recstream_tools.evaluation.interactions import load_interactions
from recstream_tools.evaluation.neighbours import RECALL_AT, abt_buy_recall, twin_recall
from recstream_tools.evaluation.online_retail import online_retail_dataset
from recstream_tools.training.encoder import (
    TrainingOptions,
    fine_tune,
    load_model,
    save_model,
)
from recstream_tools.training.pairs import (
    MIN_TRAIN_PAIRS,
    Pair,
    abt_buy_pairs,
    category_pairs,
    co_purchase_pairs,
    hold_out,
    load_items,
    load_pairs,
)
from schemas.catalog import Item
from stream.ranking.profile import Interaction
from stream.settings import Settings

log = structlog.get_logger(__name__)

RESULT_FILE = "recstream-training.json"


class TrainingRefused(ValueError):
    """The request cannot give a useful model: what to change is in the message."""


@dataclass(frozen=True)
class Sources:
    pairs_file: Path | None = None
    items_file: Path | None = None
    same_category: int = 0
    """Pairs of items with the same category (from the items file) at most."""
    abt_buy: Path | None = None
    """An Abt-Buy directory: its training split's pairs, and its test split measured."""
    interactions: Path | None = None
    """Shopper interactions (with the items file), or the Online Retail invoices (alone)."""
    co_purchase: int = 0
    """Pairs of items bought together at most."""
    before: datetime | None = None
    """Only interactions before this time (a later period stays unseen, for evaluation)."""


@dataclass
class Gathered:
    pairs: list[Pair] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, Any] = field(default_factory=dict)
    abt_buy: tuple[AbtBuy, list[tuple[str, str]]] | None = None


def gather(sources: Sources, seed: int) -> Gathered:
    """Every pair the sources give, with counts per source and the rows rejected."""
    found = Gathered()
    items = None
    if sources.items_file is not None:
        items, rejected = load_items(sources.items_file)
        found.rejected["items"] = asdict(rejected)
    if sources.pairs_file is not None:
        pairs, rejected = load_pairs(sources.pairs_file, items)
        found.pairs += pairs
        found.counts["pairs_file"] = len(pairs)
        found.rejected["pairs_file"] = asdict(rejected)
    if sources.same_category and items is not None:
        pairs = category_pairs(items.values(), sources.same_category, seed)
        found.pairs += pairs
        found.counts["same_category"] = len(pairs)
    if sources.interactions is not None and sources.co_purchase:
        histories, texts = _purchases(sources.interactions, items)
        if sources.before is not None:
            cut = sources.before
            histories = {u: [i for i in h if i.at < cut] for u, h in histories.items()}
        pairs = co_purchase_pairs(histories, texts, sources.co_purchase)
        found.pairs += pairs
        found.counts["co_purchase"] = len(pairs)
    if sources.abt_buy is not None:
        data = load_abt_buy(sources.abt_buy)
        train, test = split_pairs(data.pairs)
        found.pairs += abt_buy_pairs(data, train)
        found.counts["abt_buy_train"] = len(train)
        found.abt_buy = (data, test)
    return found


def _purchases(
    path: Path, items: dict[str, Item] | None
) -> tuple[dict[str, list[Interaction]], dict[str, str]]:
    """Histories and item texts: a shop's interactions file with its items file, or the Online
    Retail invoices (whose descriptions are the titles)."""
    if items is not None:
        histories, _ = load_interactions(path)
        return histories, {item_id: item_text(item) for item_id, item in items.items()}
    data = online_retail_dataset(path)
    texts: dict[str, str] = {}
    for item_id, item in data.items.items():
        try:
            texts[item_id] = item_text(Item(item_id=item_id, title=item.title))
        except ValidationError:
            continue
    return data.interactions, texts


def held_out_recall(encoder: Encoder, pairs: Sequence[Pair]) -> dict[str, float]:
    """For each held-out pair, is its second text among the k held-out second texts nearest to
    its first? (R@1, R@10)"""
    if not pairs:
        return {}
    a = encoder.encode([p.text_a for p in pairs])
    b = encoder.encode([p.text_b for p in pairs])
    order = np.argsort(-(a @ b.T), axis=1, kind="stable")
    ranked = [row.tolist() for row in order[:, :10]]
    truth = [{q} for q in range(len(pairs))]
    return {f"R@{k}": round(twin_recall(ranked, truth, k), 4) for k in (1, 10)}


def measure(
    encoder: Encoder, held: Sequence[Pair], abt: tuple[AbtBuy, list[tuple[str, str]]] | None
) -> dict[str, Any]:
    figures: dict[str, Any] = {"held_out": held_out_recall(dense_part(encoder), held)}
    if abt is not None:
        methods = abt_buy_recall(abt[0], abt[1], encoder)
        figures["abt_buy_test"] = {
            m: methods[m] for m in ("dense", "fusion", "recstream") if m in methods
        }
    return figures


def train_encoder(
    settings: Settings,
    sources: Sources,
    out: Path,
    options: TrainingOptions,
    holdout: float = 0.1,
    report: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fine-tune ``settings.model`` on the sources' pairs and write it to ``out``; the result
    (also in ``out/recstream-training.json``). Raises :class:`TrainingRefused`."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TrainingRefused(f"{out} exists and is not an empty directory: choose a new --out")
    if sources.co_purchase and sources.interactions is None:
        raise TrainingRefused("--co-purchase pairs items bought together: give --interactions")
    if sources.same_category and sources.items_file is None:
        raise TrainingRefused("--same-category pairs items of the items file: give --items")
    source = resolve_model(settings.model)
    if not source.local:
        raise TrainingRefused(
            f"RECSTREAM_MODEL={settings.model!r} is not a local directory: fine-tuning starts "
            "from a model on disk (nothing is downloaded)"
        )
    gathered = gather(sources, options.seed)
    train, held = hold_out(gathered.pairs, holdout, options.seed)
    if len(train) < MIN_TRAIN_PAIRS:
        raise TrainingRefused(
            f"{len(train)} training pairs ({len(gathered.pairs)} distinct pairs found, "
            f"{len(held)} held out): fine-tuning needs at least {MIN_TRAIN_PAIRS}; give more "
            "pairs (--pairs, --same-category with --items, --co-purchase with --interactions, "
            "--abt-buy)"
        )
    started = time.perf_counter()
    if settings.encoder_threads:
        torch.set_num_threads(settings.encoder_threads)
    device, _ = resolve_device(settings.device, torch.cuda.is_available(), False)
    options = TrainingOptions(**{**asdict(options), "device": device})
    report(
        f"{len(train)} training pairs ({', '.join(f'{k} {v}' for k, v in gathered.counts.items())}"
        f"), {len(held)} held out; {settings.model} on {device}"
    )
    before = measure(load_encoder(settings), held, gathered.abt_buy)
    report(f"before: {_figures(before)}")
    model = load_model(source.location, device)
    trained = fine_tune(model, train, options)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out)
    del model
    after = measure(
        load_encoder(settings.model_copy(update={"model": str(out)})), held, gathered.abt_buy
    )
    report(f"after:  {_figures(after)}")
    result = {
        "base_model": settings.model,
        "model_dir": str(out),
        "pairs": {"train": len(train), "held_out": len(held), **gathered.counts},
        "rejected": gathered.rejected,
        "options": asdict(options),
        "holdout": holdout,
        "training": asdict(trained),
        "before": before,
        "after": after,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        },
    }
    (out / RESULT_FILE).write_text(json.dumps(result, indent=2) + "\n")
    return result


def _figures(measured: dict[str, Any]) -> str:
    parts = [f"held-out {k} {v:.3f}" for k, v in measured["held_out"].items()]
    for method, figures in measured.get("abt_buy_test", {}).items():
        parts.append(
            f"Abt-Buy test {method} "
            + " ".join(f"R@{k} {figures[f'R@{k}']:.3f}" for k in RECALL_AT)
        )
    return "; ".join(parts)
