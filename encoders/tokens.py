"""Tokenising many texts at once into flat arrays, and packing them into padded batches.

transformers' tokenizer call builds a Python dict per text; at the rate a GPU encodes, that
costs more than the model. Here plain ASCII texts are tokenised by :mod:`encoders.wordpiece`
and the rest by the Rust tokenizer (in parallel, without the GIL), the ids land in one flat
int32 array, and a batch is cut from it with one masked assignment. The ids are the ones
transformers' call gives with ``truncation=True`` and ``max_length``: special tokens added, the
text cut on the tokenizer's truncation side (checked in the unit tests).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from encoders.wordpiece import AsciiWordPiece

Ids = npt.NDArray[np.int32]


@dataclass(frozen=True)
class Tokens:
    """The token ids of ``n`` texts: ``flat[starts[i]:starts[i] + lengths[i]]`` is text ``i``."""

    flat: Ids
    starts: npt.NDArray[np.int64]
    lengths: npt.NDArray[np.int64]

    @classmethod
    def of(cls, flat: Ids, lengths: npt.NDArray[np.int64]) -> Tokens:
        """The texts laid end to end in ``flat``, ``lengths[i]`` ids each."""
        starts = np.zeros(len(lengths), dtype=np.int64)
        if len(lengths) > 1:
            np.cumsum(lengths[:-1], out=starts[1:])
        return cls(flat, starts, lengths)


class FastTokenizer:
    """A private copy of a transformers fast tokenizer's Rust backend, set to truncate at
    ``max_length`` and never pad (the model files may ask for padding to a fixed length).

    For a BERT tokenizer, plain ASCII texts (nearly all product texts) take
    :class:`~encoders.wordpiece.AsciiWordPiece`, which gives the same ids faster.
    """

    def __init__(
        self,
        spec: str,
        max_length: int,
        direction: str = "right",
        split_special_tokens: bool = False,
    ) -> None:
        """``spec``: the backend's JSON (``hf_tokenizer.backend_tokenizer.to_str()``); the
        truncation side and whether special-token text is split are not part of it."""
        from tokenizers import Tokenizer

        self.spec, self.max_length = spec, max_length
        self.direction, self.split_special_tokens = direction, split_special_tokens
        self._backend = Tokenizer.from_str(spec)
        self._backend.no_padding()
        self._backend.enable_truncation(max_length, direction=direction)
        self._backend.encode_special_tokens = split_special_tokens
        self._ascii = AsciiWordPiece.fit(self._backend)

    @classmethod
    def of(cls, hf_tokenizer: Any, max_length: int) -> FastTokenizer:
        """The copy of a transformers fast tokenizer, truncating on its side."""
        backend = hf_tokenizer.backend_tokenizer
        return cls(
            backend.to_str(),
            max_length,
            getattr(hf_tokenizer, "truncation_side", "right"),
            bool(getattr(backend, "encode_special_tokens", False)),
        )

    def settings(self) -> tuple[str, int, str, bool]:
        """What rebuilds this tokenizer in another process."""
        return self.spec, self.max_length, self.direction, self.split_special_tokens

    def __call__(self, texts: Sequence[str]) -> Tokens:
        texts = list(texts)
        if self._ascii is None:
            ids = _ids(self._backend, texts)
        else:
            plain = [self._ascii.accepts(t) for t in texts]
            fast = iter(self._ascii([t for t, p in zip(texts, plain, strict=True) if p]))
            rest = [t for t, p in zip(texts, plain, strict=True) if not p]
            slow = iter(_ids(self._backend, rest) if rest else [])
            ids = [next(fast) if p else next(slow) for p in plain]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        total = int(lengths.sum())
        flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32, count=total)
        return Tokens.of(flat, lengths)


def _ids(backend: Any, texts: list[str]) -> list[list[int]]:
    # encode_batch_fast (tokenizers >= 0.20) skips character offsets, which nothing here reads
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [e.ids for e in encode(texts)]


def pack(tokens: Tokens, rows: Sequence[int], pad_id: int) -> tuple[Ids, npt.NDArray[np.int64]]:
    """``(ids, lengths)`` of the texts ``rows``: ids right-padded with ``pad_id`` to the longest
    of them (absolute positions stay from 0), one row per text in the order given."""
    index = np.asarray(rows, dtype=np.int64)
    lengths = tokens.lengths[index]
    longest = int(lengths.max()) if len(index) else 0
    ids = np.full((len(index), longest), pad_id, dtype=np.int32)
    filled = np.arange(longest) < lengths[:, None]
    # row-major: the filled cells of row r are exactly text rows[r]'s ids, in order
    gather = (tokens.starts[index][:, None] + np.arange(longest))[filled]
    ids[filled] = tokens.flat[gather]
    return ids, lengths


_WORKER: FastTokenizer | None = None


def _start_worker(spec: str, max_length: int, direction: str, split_special: bool) -> None:
    global _WORKER
    # one core per worker process: the pool is the parallelism
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER = FastTokenizer(spec, max_length, direction, split_special)


def _tokenize_in_worker(texts: list[str]) -> tuple[Ids, npt.NDArray[np.int64]]:
    assert _WORKER is not None
    tokens = _WORKER(texts)
    return tokens.flat, tokens.lengths


class TokenizerPool:
    """A :class:`FastTokenizer` spread over worker processes, for bulk encoding on a GPU.

    In one process tokenising runs on one core (the word-cache path and the conversion of the
    Rust tokenizer's output hold the GIL), well short of what a GPU encodes (bench/README.md).
    Each worker returns flat arrays (cheap to send) for its slice. Workers are started with
    ``spawn`` (the parent holds CUDA and threads, which ``fork`` would copy in a broken state);
    like any spawned pool, they import the main module again, so a script that encodes more than
    one chunk needs an ``if __name__ == "__main__"`` guard.
    """

    def __init__(self, tokenizer: FastTokenizer, workers: int) -> None:
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=tokenizer.settings(),
        )

    def __call__(self, texts: Sequence[str]) -> Tokens:
        texts = list(texts)
        size = max(256, -(-len(texts) // self.workers))
        parts = list(self._pool.map(_tokenize_in_worker, _slices(texts, size)))
        lengths = np.concatenate([lengths for _, lengths in parts]) if parts else _EMPTY
        flat = np.concatenate([flat for flat, _ in parts]) if parts else _EMPTY.astype(np.int32)
        return Tokens.of(flat, lengths)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


_EMPTY = np.zeros(0, dtype=np.int64)


def _slices(texts: list[str], size: int) -> list[list[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]
