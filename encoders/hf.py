"""What both runtimes share around a transformers model: quiet loading, pooling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

import torch


@contextlib.contextmanager
def no_progress_bar() -> Iterator[None]:
    """transformers draws a tqdm bar while it loads weights; it would land in the JSON logs."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    cast(Any, hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        if bar_was_on:
            cast(Any, hf_logging.enable_progress_bar)()


def pool(states: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Unit-length sentence vectors from token states: the [CLS] token's (``"cls"``) or the mean
    over the attention mask (``"mean"``), as sentence-transformers' Pooling and Normalize."""
    if mode == "cls":
        pooled = states[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, p=2.0, dim=1)
