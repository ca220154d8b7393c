"""Contrastive fine-tuning of a sentence-transformers model with in-batch negatives: the torch
side of ``recstream train encoder``.

Each step embeds a batch of pairs and minimises sentence-transformers'
``MultipleNegativesRankingLoss``: for each first text, its own second text must score above every
other second text of the batch (scale 20, cosine). AdamW, linear warm-up over the first tenth of
the steps, then linear decay. sentence-transformers' own trainer needs ``datasets`` and
``accelerate``; this loop needs neither.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from recstream_tools.training.pairs import Pair, batches

log = structlog.get_logger(__name__)

WARMUP_SHARE = 0.1
LOSS_SCALE = 20.0


@dataclass(frozen=True)
class TrainingOptions:
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 128
    """Tokens per text in training (the encoder cuts to ``RECSTREAM_MAX_SEQ_LENGTH`` in use)."""
    seed: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class Trained:
    steps: int
    seconds: float
    first_loss: float
    last_loss: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_model(location: str, device: str) -> Any:
    """The sentence-transformers model in ``location`` (a local directory; nothing is fetched)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(location, device=device, local_files_only=True)


def fine_tune(model: Any, pairs: Sequence[Pair], options: TrainingOptions) -> Trained:
    """Train ``model`` in place on ``pairs`` for ``options.epochs`` epochs, with a progress bar
    on stderr."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from tqdm import tqdm

    seed_everything(options.seed)
    rng = random.Random(options.seed)
    model.max_seq_length = options.max_length
    loss_fn = MultipleNegativesRankingLoss(model, scale=LOSS_SCALE)
    epochs = [batches(pairs, options.batch_size, rng) for _ in range(options.epochs)]
    total = sum(len(e) for e in epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warm_up_then_decay(total))
    model.train()
    losses: list[float] = []
    started = time.perf_counter()
    with tqdm(total=total, desc="fine-tuning", unit="step", file=sys.stderr) as bar:
        for epoch, epoch_batches in enumerate(epochs, start=1):
            for batch in epoch_batches:
                features = [
                    _to(model.preprocess([p.text_a for p in batch]), options.device),
                    _to(model.preprocess([p.text_b for p in batch]), options.device),
                ]
                loss = loss_fn(features, None)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                losses.append(float(loss.detach()))
                bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}")
                bar.update()
    model.eval()
    seconds = time.perf_counter() - started
    log.info("train.done", steps=total, s=round(seconds, 1), last_loss=round(losses[-1], 4))
    return Trained(total, seconds, losses[0], float(np.mean(losses[-max(1, total // 10) :])))


def _warm_up_then_decay(total: int) -> Callable[[int], float]:
    """The learning rate's factor at each step: linear up to 1 over the first tenth of the
    steps, then linear down to 0 at the last (transformers' linear schedule)."""
    warmup = int(total * WARMUP_SHARE)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _to(features: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}


def save_model(model: Any, directory: Path) -> None:
    """A sentence-transformers directory (config, weights, tokenizer, pooling) the encoder loads.

    sentence-transformers 5+ writes the pooling as ``"pooling_mode": "mean"``, which older
    readers, recstream's encoder among them, do not know: the classic ``pooling_mode_*_tokens``
    flags are written beside it (newer readers drop them when ``pooling_mode`` is present).
    """
    model.save(str(directory), create_model_card=False)
    for module in json.loads((directory / "modules.json").read_text()):
        config_file = directory / module["path"] / "config.json"
        if not module["type"].endswith("Pooling") or not config_file.is_file():
            continue
        config = json.loads(config_file.read_text())
        mode = config.get("pooling_mode")
        if isinstance(mode, str):
            config.setdefault("word_embedding_dimension", config.get("embedding_dimension"))
            for legacy, name in _LEGACY_POOLING.items():
                config.setdefault(legacy, mode == name)
            config_file.write_text(json.dumps(config, indent=2) + "\n")


_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
}
