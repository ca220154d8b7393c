"""A deterministic stand-in for the encoder in tests of list logic (not of embeddings): a text's
SHA-256 seeds a 16-dimensional unit vector, so hundreds of catalogue changes take milliseconds."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class HashEncoder:
    """Deterministic fake: text -> 16-dim unit vector seeded by the text's SHA-256."""

    name = "hash-16"
    dim = 16
    device = "cpu"
    runtime = "torch"

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows = [self.vector(t) for t in texts]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) + 2 for t in texts]

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
        v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
        out: npt.NDArray[np.float32] = v / np.linalg.norm(v)
        return out
