"""The encoder's CPU precision (RECSTREAM_ENCODER_QUANTIZE): choice, and agreement with float32."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch
from pydantic import ValidationError

from encoders import BertEncoder, EncoderError, load_encoder
from encoders.bert import cpu_precision
from encoders.text import item_text
from schemas.catalog import Item
from stream.sample_catalog import sample_items
from stream.settings import Settings

AMX = {"amx_bf16": True, "avx512_bf16": True, "avx512_vnni": True}
AVX512_BF16_ONLY = {"amx_bf16": False, "avx512_bf16": True}
AVX2 = {"avx2": True, "amx_bf16": False, "avx512_bf16": False}

# Product texts as the pipeline embeds them, plus a few short and non-English titles.
TEXTS = [item_text(Item.model_validate(i)) for i in sample_items(40, seed=3)] + [
    "Yoga mat",
    "Kinderbuch: Der kleine Drache Kokosnuss",
    "Chaussures de course légères pour femme, taille 38",
    "USB-C to USB-C cable 2 m, 100 W fast charging",
]


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Row-wise cosine of two stacks of unit vectors."""
    return (a.astype(np.float64) * b.astype(np.float64)).sum(axis=1)


@pytest.fixture(scope="module")
def fp32_vectors() -> npt.NDArray[np.float32]:
    return BertEncoder(device="cpu", quantize="none").encode(TEXTS)


@pytest.mark.parametrize(
    ("setting", "capabilities", "expected"),
    [
        ("auto", AMX, "bfloat16"),
        ("auto", AVX512_BF16_ONLY, "bfloat16"),
        ("auto", AVX2, "float32"),
        ("auto", {}, "float32"),
        ("none", AMX, "float32"),
        ("bf16", AVX2, "bfloat16"),
        ("int8", AMX, "int8"),
        ("int8", {}, "int8"),
    ],
)
def test_cpu_precision_choice(setting: str, capabilities: dict[str, bool], expected: str) -> None:
    """auto takes bf16 only where the CPU computes it natively; explicit values are obeyed."""
    assert cpu_precision(setting, capabilities) == expected


def test_unknown_quantize_value_is_refused() -> None:
    """A mistyped value names the setting and the valid choices, in the encoder and settings."""
    with pytest.raises(EncoderError, match=r"RECSTREAM_ENCODER_QUANTIZE.*auto, none, bf16, int8"):
        cpu_precision("fp8", AMX)
    with pytest.raises(ValidationError, match="encoder_quantize"):
        Settings(encoder_quantize="fp8")  # type: ignore[arg-type]


def test_int8_agrees_with_float32(fp32_vectors: npt.NDArray[np.float32]) -> None:
    """int8 dynamic quantisation keeps every vector within cosine 0.97, on average 0.99."""
    encoder = BertEncoder(device="cpu", quantize="int8")
    assert encoder.precision == "int8"
    vectors = encoder.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    agreement = cosines(vectors, fp32_vectors)
    assert agreement.mean() >= 0.99, agreement.round(4)
    assert agreement.min() >= 0.97, agreement.round(4)


def test_bf16_agrees_with_float32(fp32_vectors: npt.NDArray[np.float32]) -> None:
    """bf16 on the CPU gives float32 unit vectors within cosine 0.999 of float32's."""
    encoder = BertEncoder(device="cpu", quantize="bf16")
    assert encoder.precision == "bfloat16"
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32
    assert cosines(vectors, fp32_vectors).min() >= 0.999


def test_load_encoder_reads_quantize_and_threads() -> None:
    """load_encoder hands RECSTREAM_ENCODER_QUANTIZE and RECSTREAM_ENCODER_THREADS over."""
    before = torch.get_num_threads()
    try:
        encoder = load_encoder(Settings(device="cpu", encoder_quantize="none", encoder_threads=1))
        assert isinstance(encoder, BertEncoder)
        assert encoder.precision == "float32"
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_zero_threads_leaves_torch_alone() -> None:
    """RECSTREAM_ENCODER_THREADS=0 (the default) keeps torch's own thread count."""
    before = torch.get_num_threads()
    BertEncoder(device="cpu", quantize="none", threads=0)
    assert torch.get_num_threads() == before
    with pytest.raises(EncoderError, match="threads"):
        BertEncoder(device="cpu", threads=-1)
