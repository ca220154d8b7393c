"""Flat tokenising and batch packing (encoders/tokens.py), and the pipelined encode loop
(encoders/cuda.py) run on the CPU: the same vectors as the plain loop, in input order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from encoders import BertEncoder
from encoders.cuda import encode_pipelined
from encoders.tokens import FastTokenizer, TokenizerPool, Tokens, pack
from tests.encoders.test_encoder import LONG_DESCRIPTION, MODEL_DIR, VARIED_TEXTS, cosine_rows


@pytest.fixture(scope="module")
def torch_encoder() -> BertEncoder:
    return BertEncoder(device="cpu", runtime="torch", quantize="none", max_tokens=64)


@pytest.mark.parametrize("max_length", [256, 16])
def test_ids_are_transformers_ids(max_length: int) -> None:
    """The same ids as transformers' tokenizer call with truncation, text by text, although the
    model's tokenizer.json asks for padding to 128 and truncation at 128."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    texts = [*VARIED_TEXTS, LONG_DESCRIPTION, "a", "  spaced   out  "]
    tokens = FastTokenizer.of(hf, max_length)(texts)
    expected = hf(texts, truncation=True, max_length=max_length)["input_ids"]
    got = [
        tokens.flat[s : s + n].tolist() for s, n in zip(tokens.starts, tokens.lengths, strict=True)
    ]
    assert got == expected
    assert tokens.flat.dtype == np.int32
    assert max(tokens.lengths) == max_length  # the long texts were cut


@pytest.fixture(scope="module")
def hf_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)


pieces = st.sampled_from(
    [
        *"abcXYZ019 .,;:!?'\"-_/()&%$#@",
        "\t",
        "\n",
        "\r",
        "\x00",
        "\x07",
        "\x0b",
        "\x0c",
        "\x1f",
        "\x7f",
        "ing",
        "##",
        "[SEP]",
        "Ünïcödé",
        "中文",
    ]
)
edge_texts = st.lists(pieces, min_size=1, max_size=40).map("".join)


@given(texts=st.lists(edge_texts, min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_ascii_fast_path_gives_transformers_ids(hf_tokenizer: Any, texts: list[str]) -> None:
    """Plain ASCII texts take the lowercase-only copy; texts with control characters or non-ASCII
    letters take the full normaliser: either way the ids are transformers' own."""
    tokens = FastTokenizer.of(hf_tokenizer, 32)(texts)
    expected = hf_tokenizer(texts, truncation=True, max_length=32)["input_ids"]
    got = [
        tokens.flat[s : s + n].tolist() for s, n in zip(tokens.starts, tokens.lengths, strict=True)
    ]
    assert got == expected


def _hf(**kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True, **kwargs)


TRICKY = ["hello [SEP] world", "cafe latte", "Café au lait", "wi\tfi router", "wi fi router"]


def _same_ids(hf: Any, texts: list[str], max_length: int) -> None:
    tokens = FastTokenizer.of(hf, max_length)(texts)
    got = [
        tokens.flat[s : s + n].tolist() for s, n in zip(tokens.starts, tokens.lengths, strict=True)
    ]
    assert got == hf(texts, truncation=True, max_length=max_length)["input_ids"]


def test_left_truncation_is_honoured() -> None:
    """A model whose tokenizer cuts on the left keeps the end of a long text, as transformers."""
    _same_ids(_hf(truncation_side="left"), [*VARIED_TEXTS, LONG_DESCRIPTION], 12)


def test_user_added_tokens_and_split_special_tokens() -> None:
    """Tokens added to the vocabulary (matched after normalising) and split_special_tokens give
    transformers' ids: such tokenizers skip the ASCII fast path or keep the flag."""
    added = _hf()
    added.add_tokens(["Café", "wi fi"])
    _same_ids(added, [*TRICKY, *VARIED_TEXTS], 64)
    _same_ids(_hf(split_special_tokens=True), [*TRICKY, *VARIED_TEXTS], 64)


def test_tokenizer_pool_gives_the_same_tokens(hf_tokenizer: Any) -> None:
    """Worker processes return the same flat ids, lengths and starts as one process."""
    fast = FastTokenizer.of(hf_tokenizer, 256)
    texts = [*VARIED_TEXTS, LONG_DESCRIPTION] * 40
    pool = TokenizerPool(fast, workers=2)
    try:
        pooled, local = pool(texts), fast(texts)
        assert pool([]).lengths.shape == (0,)
    finally:
        pool.close()
    np.testing.assert_array_equal(pooled.flat, local.flat)
    np.testing.assert_array_equal(pooled.lengths, local.lengths)
    np.testing.assert_array_equal(pooled.starts, local.starts)


texts_ids = st.lists(st.lists(st.integers(1, 30_000), min_size=1, max_size=12), min_size=1)


@given(seqs=texts_ids, data=st.data())
@settings(max_examples=200, deadline=None)
def test_pack_pads_the_rows_asked_for(seqs: list[list[int]], data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.integers(0, len(seqs) - 1), min_size=1, unique=True))
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flat = np.array([i for s in seqs for i in s], dtype=np.int32)
    ids, got_lengths = pack(Tokens(flat, starts, lengths), rows, pad_id=0)
    longest = max(len(seqs[r]) for r in rows)
    assert ids.shape == (len(rows), longest)
    for out_row, r in enumerate(rows):
        assert ids[out_row].tolist() == seqs[r] + [0] * (longest - len(seqs[r]))
    assert got_lengths.tolist() == [len(seqs[r]) for r in rows]


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_pipelined_loop_gives_the_plain_loops_vectors(
    torch_encoder: BertEncoder, chunk: int
) -> None:
    """Chunks of any size, with the next chunk tokenised on a worker thread, give each text the
    vector the plain CPU loop gives it, in input order."""
    texts = [*VARIED_TEXTS, *reversed(VARIED_TEXTS[:9])]
    plain = torch_encoder.encode(texts)
    piped = encode_pipelined(
        texts,
        torch_encoder._fast,
        torch_encoder._unit,
        device="cpu",
        dim=torch_encoder.dim,
        max_tokens=torch_encoder.max_tokens,
        pad_id=torch_encoder._pad_id,
        chunk=chunk,
    )
    assert piped.shape == (len(texts), 384)
    assert cosine_rows(piped, plain).min() > 0.99999
    # the repeated texts got their own vectors back, wherever their chunk and batch put them
    assert cosine_rows(piped[len(VARIED_TEXTS) :], piped[8::-1]).min() > 0.99999


def test_pipelined_loop_raises_the_workers_error(torch_encoder: BertEncoder) -> None:
    def broken(texts: Sequence[str]) -> Tokens:
        if "Yoga mat" in texts:
            raise RuntimeError("tokenizer broke")
        return torch_encoder._fast(texts)

    with pytest.raises(RuntimeError, match="tokenizer broke"):
        encode_pipelined(
            VARIED_TEXTS,
            broken,
            torch_encoder._unit,
            device="cpu",
            dim=384,
            max_tokens=64,
            pad_id=0,
            chunk=4,
        )
    assert encode_pipelined(
        [], broken, torch_encoder._unit, device="cpu", dim=384, max_tokens=64, pad_id=0
    ).shape == (0, 384)
