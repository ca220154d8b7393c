"""The encoder's CUDA path: the CPU tokenises and packs the next chunk of texts while the GPU
runs the current one, so the GPU does not wait on Python between batches.

Per chunk, a worker thread tokenises (in worker processes for bulk calls, see
:class:`~encoders.tokens.TokenizerPool`), plans batches under the token budget and packs them
into pinned host memory; the main thread copies each batch to the GPU without waiting, builds
its attention mask there, runs the model and pools into a chunk result on the GPU, and copies
that result back once per chunk. (transformers' BERT still waits for the GPU once per forward
pass, when it checks whether the padding mask can be dropped; at 131,072 tokens a pass that
costs little.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from encoders.batching import plan_batches
from encoders.tokens import Tokens, pack

CHUNK_TEXTS = 16_384
"""Texts tokenised and sorted together; the next chunk is prepared while this one runs."""

UnitForward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""(ids, attention mask) on the device -> unit vectors, float32, one row per text."""


def attention_mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The int64 mask of right-padded ``ids``, built where they are (on the GPU: no copy)."""
    positions = torch.arange(ids.shape[1], device=ids.device)
    return (positions < lengths[:, None]).to(torch.int64)


@dataclass(frozen=True)
class _Batch:
    rows: torch.Tensor
    ids: torch.Tensor
    lengths: torch.Tensor


def _prepare(
    tokenize: Callable[[Sequence[str]], Tokens],
    texts: Sequence[str],
    max_tokens: int,
    pad_id: int,
    pin: bool,
) -> list[_Batch]:
    def host(array: npt.NDArray[np.generic]) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        # page-locked memory lets the copy to the GPU run without the CPU waiting on it
        return tensor.pin_memory() if pin else tensor

    tokens = tokenize(texts)
    batches = []
    for rows in plan_batches(tokens.lengths.tolist(), max_tokens):
        ids, lengths = pack(tokens, rows, pad_id)
        batches.append(_Batch(host(np.asarray(rows, dtype=np.int64)), host(ids), host(lengths)))
    return batches


def encode_pipelined(
    texts: Sequence[str],
    tokenize: Callable[[Sequence[str]], Tokens],
    forward: UnitForward,
    *,
    device: str,
    dim: int,
    max_tokens: int,
    pad_id: int,
    chunk: int = CHUNK_TEXTS,
) -> npt.NDArray[np.float32]:
    """``(len(texts), dim)`` float32 unit vectors in input order, computed chunk by chunk with
    the next chunk's tokenising overlapped with this one's forward passes (on ``"cpu"`` too,
    without pinned memory: that is how the tests run it on machines without a GPU)."""
    out = np.empty((len(texts), dim), dtype=np.float32)
    starts = list(range(0, len(texts), chunk))
    if not starts:
        return out
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="recstream-tokenize") as worker:

        def submit(start: int) -> Future[list[_Batch]]:
            part = texts[start : start + chunk]
            return worker.submit(_prepare, tokenize, part, max_tokens, pad_id, device != "cpu")

        pending = submit(starts[0])
        for number, start in enumerate(starts):
            batches = pending.result()
            if number + 1 < len(starts):
                pending = submit(starts[number + 1])
            size = min(chunk, len(texts) - start)
            result = torch.empty((size, dim), dtype=torch.float32, device=device)
            with torch.inference_mode():
                for batch in batches:
                    ids = batch.ids.to(device, non_blocking=True)
                    lengths = batch.lengths.to(device, non_blocking=True)
                    rows = batch.rows.to(device, non_blocking=True)
                    result.index_copy_(0, rows, forward(ids, attention_mask(ids, lengths)))
            # the copy back waits for the chunk: the pinned inputs stay referenced until then
            out[start : start + size] = result.cpu().numpy()
            del batches
    return out
