"""Text encoders: texts in, unit-length vectors out.

``BertEncoder`` (and torch with it) is imported on first use, so that importing the package for
its interface or errors stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from encoders.base import Encoder, EncoderSettings
from encoders.errors import EncoderError, ModelNotFound, ModelTampered, TextRejected

if TYPE_CHECKING:
    from encoders.bert import BertEncoder

__all__ = [
    "BertEncoder",
    "Encoder",
    "EncoderError",
    "EncoderSettings",
    "ModelNotFound",
    "ModelTampered",
    "TextRejected",
    "load_encoder",
]


def load_encoder(settings: EncoderSettings) -> Encoder:
    """The encoder the settings describe: the model's, fused with character n-grams unless
    ``lexical_weight`` is 0 (:mod:`encoders.hybrid`); raises :class:`EncoderError` when they
    cannot work."""
    from encoders.bert import BertEncoder
    from encoders.hybrid import hybrid

    return hybrid(
        BertEncoder.from_settings(settings), settings.lexical_weight, settings.lexical_dim
    )


def __getattr__(name: str) -> Any:
    if name == "BertEncoder":
        from encoders.bert import BertEncoder

        return BertEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
