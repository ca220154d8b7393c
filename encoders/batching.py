"""How one ``encode`` call is split into forward passes under a token budget (pure).

Texts are sorted by length so each batch pads little, and a batch's padded cost (its longest
text times its size, what the model actually computes on) stays within the budget. Optionally a
batch also closes where the next text is much shorter than its longest (``max_padding``): on the
CPU a forward pass costs little beyond its tokens, so several tight passes beat one padded one
(bench/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], max_tokens: int, max_padding: float = 1.0
) -> list[list[int]]:
    """Indices into ``lengths``, longest first, grouped so ``longest * size <= max_tokens`` and
    every text is at least ``(1 - max_padding) * longest`` long (1.0: any length joins).

    Every index appears exactly once; a text longer than the whole budget forms its own batch.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, not {max_tokens}")
    if not 0.0 <= max_padding <= 1.0:
        raise ValueError(f"max_padding must be within [0, 1], not {max_padding}")
    shortest = 1.0 - max_padding
    # sorted() is stable, so equal lengths keep input order: the plan is deterministic.
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in order:
        if current and (
            longest * (len(current) + 1) > max_tokens or lengths[index] < shortest * longest
        ):
            batches.append(current)
            current = []
        if not current:
            # Descending order: the first text of a batch is its longest.
            longest = lengths[index]
        current.append(index)
    if current:
        batches.append(current)
    return batches
