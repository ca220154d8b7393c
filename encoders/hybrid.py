"""One vector for a hybrid similarity: the model's embedding beside the text's character n-grams.

With ``w`` the lexical weight, an item's vector is ``[sqrt(1 - w) * dense, sqrt(w) * lexical]``
(both parts unit length, so the whole is too), and the cosine of two such vectors is exactly

    (1 - w) * cos(dense_a, dense_b) + w * cos(lexical_a, lexical_b)

Everything that searches vectors (the catalog consumer's exact in-memory search, the store's
queries, the behaviour path's profiles, the HTTP search) therefore ranks by the fused score with
no change of its own: lists stay an exact top-k of the fused score. The price is memory and
search time, ``dense dim + lexical dim`` floats per item instead of ``dense dim``.

The name written into messages and the store's model record carries the mix
(``all-MiniLM-L6-v2+chargrams1024@0.5``), so a store embedded with another weight or size is
refused at start-up like one embedded by another model.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from encoders import lexical
from encoders.base import Encoder, EncoderSettings
from encoders.lexical import lexical_vectors

LEXICAL_VERSION = "2"
"""Part of the fingerprint of hybrid vectors (with the lexical module's constants): raised
whenever :mod:`encoders.lexical` would give another vector for a text for another reason, so a
store embedded before is refused rather than mixed."""


def mix_name(weight: float, lexical_dim: int) -> str:
    """What the model's name gets for a hybrid mix: ``+chargrams1024@0.5``."""
    return f"+chargrams{lexical_dim}@{weight:g}"


_MIX = re.compile(r"\+chargrams(\d+)@([0-9.e+-]+)$")


def parse_mix(name: object) -> tuple[float, int] | None:
    """The (weight, lexical dimensions) that :func:`mix_name` put in the encoder ``name`` (as
    the store records it); None for a model's own vectors."""
    found = _MIX.search(name) if isinstance(name, str) else None
    return (float(found.group(2)), int(found.group(1))) if found else None


def lexical_width(name: object) -> int:
    """How many of the last floats of a vector made by the encoder ``name`` (as the store
    records it beside each item) are its lexical part: 0 for a model's own vectors."""
    mix = parse_mix(name)
    return mix[1] if mix else 0


def vector_dimension(settings: EncoderSettings) -> int:
    """The length of the vectors :func:`encoders.load_encoder` makes for ``settings``."""
    return vector_layout(settings)[0]


def vector_layout(settings: EncoderSettings) -> tuple[int, int]:
    """The length of the vectors :func:`encoders.load_encoder` makes for ``settings``, and how
    many of their last numbers are the lexical part (0: the model's vectors alone)."""
    from encoders.bert import model_dimension

    lexical = settings.lexical_dim if settings.lexical_weight > 0 else 0
    return model_dimension(settings.model) + lexical, lexical


def vector_fingerprint(settings: EncoderSettings) -> tuple[str, str]:
    """The name and SHA-256 of what makes the vectors: the model's files, and the lexical mix."""
    from encoders.bert import model_fingerprint

    name, digest = model_fingerprint(settings.model)
    if settings.lexical_weight <= 0:
        return name, digest
    mix = mix_name(settings.lexical_weight, settings.lexical_dim)
    recipe = (
        f"{digest}/{settings.lexical_weight!r}/{settings.lexical_dim}/v{LEXICAL_VERSION}/"
        f"{lexical.GRAM_SIZES}/{lexical.DIGIT_WEIGHT!r}/{lexical.MAX_CHARS}"
    )
    mixed = hashlib.sha256(recipe.encode()).hexdigest()
    return name + mix, mixed


class HybridEncoder:
    """An :class:`~encoders.base.Encoder` whose vectors fuse ``dense``'s with lexical ones."""

    def __init__(self, dense: Encoder, weight: float, lexical_dim: int) -> None:
        if not 0.0 < weight < 1.0:
            raise ValueError(f"lexical weight must be in (0, 1), not {weight}")
        self.dense = dense
        self.weight = weight
        self.lexical_dim = lexical_dim
        self.dim = dense.dim + lexical_dim
        self.device = dense.device
        self.runtime = dense.runtime
        self.name = dense.name + mix_name(weight, lexical_dim)
        self._dense_scale = np.float32(math.sqrt(1.0 - weight))
        self._lexical_scale = np.float32(math.sqrt(weight))

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``(n, dim)`` unit rows; raises as the dense encoder does for a rejected text."""
        return self.fuse(self.dense.encode(texts), texts)

    def fuse(self, dense: npt.NDArray[np.float32], texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The hybrid rows of ``texts`` whose dense encoder's rows are ``dense``."""
        out = np.empty((len(dense), self.dim), dtype=np.float32)
        np.multiply(dense, self._dense_scale, out=out[:, : self.dense.dim])
        lexical = lexical_vectors(texts, self.lexical_dim)
        np.multiply(lexical, self._lexical_scale, out=out[:, self.dense.dim :])
        # a text without a word has no lexical part: its vector is then the dense one alone
        empty = ~lexical.any(axis=1)
        if empty.any():
            out[empty] /= np.linalg.norm(out[empty], axis=1, keepdims=True)
        return out

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.dense.count_tokens(texts)

    def __getattr__(self, name: str) -> Any:
        # what only the dense encoder has (its token budget, close()): asked of it
        if name == "dense":
            raise AttributeError(name)
        return getattr(self.dense, name)


def hybrid(dense: Encoder, weight: float, lexical_dim: int) -> Encoder:
    """``dense`` fused with lexical vectors, or ``dense`` itself when ``weight`` is 0."""
    if weight <= 0.0:
        return dense
    return HybridEncoder(dense, weight, lexical_dim)


def dense_part(encoder: Encoder) -> Encoder:
    """The model's own encoder inside ``encoder`` (``encoder`` when it is not hybrid)."""
    return encoder.dense if isinstance(encoder, HybridEncoder) else encoder
