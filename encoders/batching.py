"""How one ``encode`` call is split into forward passes under a token budget (pure).

Texts are sorted by length so each batch pads little, and a batch's padded cost (its longest
text times its size, what the model actually computes on) stays within the budget. On CUDA a
batch fills the budget (:func:`plan_batches`). On the CPU a forward pass costs a fixed amount
beside its padded tokens, about as much as ``pass_tokens`` tokens: :func:`plan_by_cost` splits
the sorted texts where that minimises passes x ``pass_tokens`` + padded tokens, so a few short
texts of mixed lengths run as one pass, and long texts of very different lengths as several
(bench/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plan_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Indices into ``lengths``, longest first, grouped so ``longest * size <= max_tokens``.

    Every index appears exactly once; a text longer than the whole budget forms its own batch.
    """
    _check(max_tokens)
    # sorted() is stable, so equal lengths keep input order: the plan is deterministic.
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        if current and longest * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        if not current:
            # Descending order: the first text of a batch is its longest.
            longest = lengths[index]
        current.append(index)
    if current:
        batches.append(current)
    return batches


def plan_by_cost(lengths: Sequence[int], max_tokens: int, pass_tokens: float) -> list[list[int]]:
    """Indices into ``lengths``, longest first, in batches of consecutive texts (by length)
    that minimise ``passes * pass_tokens + sum(longest * size)`` with ``longest * size <=
    max_tokens`` (a text longer than the budget alone); of equal plans, the one whose last
    batch starts earliest. Dynamic programming over the sorted lengths, one numpy step a text.
    """
    _check(max_tokens)
    if pass_tokens < 0:
        raise ValueError(f"pass_tokens must be >= 0, not {pass_tokens}")
    n = len(lengths)
    order = sorted(range(n), key=lambda i: lengths[i], reverse=True)
    longest = np.array([lengths[i] for i in order], dtype=np.float64)
    best = np.full(n + 1, np.inf)  # best[j]: the cheapest plan of the first j texts
    best[0] = 0.0
    start = np.zeros(n + 1, dtype=np.int64)  # where that plan's last batch starts
    for i in range(n):
        # batches from text i (the longest of them): up to the budget, at least i alone
        size = max(1, min(n - i, int(max_tokens // longest[i]) if longest[i] > 0 else n - i))
        cost = best[i] + pass_tokens + longest[i] * np.arange(1, size + 1)
        ends = slice(i + 1, i + 1 + size)
        cheaper = cost < best[ends]
        best[ends] = np.where(cheaper, cost, best[ends])
        start[ends] = np.where(cheaper, i, start[ends])
    batches: list[list[int]] = []
    j = n
    while j > 0:
        i = int(start[j])
        batches.append(order[i:j])
        j = i
    return batches[::-1]


def _check(max_tokens: int) -> None:
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, not {max_tokens}")
