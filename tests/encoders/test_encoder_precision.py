"""The encoder's CPU precision (RECSTREAM_ENCODER_QUANTIZE): choice, and agreement with float32."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
import torch
from pydantic import ValidationError

from encoders import BertEncoder, EncoderError, load_encoder
from encoders.bert import cpu_capabilities, cpu_precision, cpu_runtime
from encoders.hybrid import dense_part
from encoders.text import item_text
from recstream_tools.sample_catalog import sample_items
from schemas.catalog import Item
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
    return BertEncoder(device="cpu", quantize="none", runtime="torch").encode(TEXTS)


@pytest.mark.parametrize(
    ("setting", "capabilities", "onnx", "expected"),
    [
        ("auto", AMX, False, "bfloat16"),
        ("auto", AVX512_BF16_ONLY, False, "bfloat16"),
        ("auto", AVX2, False, "float32"),
        ("auto", {}, False, "float32"),
        ("auto", AVX2, True, "int8"),
        ("auto", AMX, True, "int8"),
        ("none", AMX, False, "float32"),
        ("none", AVX2, True, "float32"),
        ("bf16", AVX2, False, "bfloat16"),
        ("int8", AMX, False, "int8"),
        ("int8", {}, True, "int8"),
    ],
)
def test_cpu_precision_choice(
    setting: str, capabilities: dict[str, bool], onnx: bool, expected: str
) -> None:
    """auto: bf16 where the CPU computes it natively (on torch), int8 on ONNX Runtime, else
    float32; explicit values are obeyed."""
    assert cpu_precision(setting, capabilities, onnx=onnx) == expected


@pytest.mark.parametrize(
    ("runtime", "quantize", "installed", "expected"),
    [
        ("auto", "auto", True, "onnx"),  # int8, on CPUs with AMX too (bench/README.md)
        ("auto", "auto", False, "torch"),
        ("auto", "none", True, "onnx"),
        ("auto", "int8", True, "onnx"),
        ("auto", "bf16", True, "torch"),
        ("torch", "int8", True, "torch"),
        ("torch", "auto", True, "torch"),
        ("onnx", "auto", True, "onnx"),
    ],
)
def test_cpu_runtime_choice(runtime: str, quantize: str, installed: bool, expected: str) -> None:
    """auto runs the model on ONNX Runtime where it is installed, except for bf16."""
    assert cpu_runtime(runtime, quantize, installed) == expected


def test_impossible_runtime_choices_are_refused() -> None:
    """onnx without onnxruntime, onnx with bf16, or a mistyped value: each says what to change."""
    with pytest.raises(EncoderError, match="pip install onnxruntime onnx"):
        cpu_runtime("onnx", "auto", False)
    with pytest.raises(EncoderError, match="bf16 runs on torch only"):
        cpu_runtime("onnx", "bf16", True)
    with pytest.raises(EncoderError, match=r"RECSTREAM_ENCODER_RUNTIME.*auto, torch, onnx"):
        cpu_runtime("tensorrt", "auto", True)
    with pytest.raises(ValidationError, match="encoder_runtime"):
        Settings(encoder_runtime="tensorrt")  # type: ignore[arg-type]


def test_unknown_quantize_value_is_refused() -> None:
    """A mistyped value names the setting and the valid choices, in the encoder and settings."""
    with pytest.raises(EncoderError, match=r"RECSTREAM_ENCODER_QUANTIZE.*auto, none, bf16, int8"):
        cpu_precision("fp8", AMX)
    with pytest.raises(ValidationError, match="encoder_quantize"):
        Settings(encoder_quantize="fp8")  # type: ignore[arg-type]


@pytest.mark.parametrize("runtime", ["onnx", "torch"])
def test_int8_agrees_with_float32(fp32_vectors: npt.NDArray[np.float32], runtime: str) -> None:
    """int8 dynamic quantisation keeps every vector within cosine 0.97, on average 0.99."""
    caps = cpu_capabilities()
    if runtime == "torch" and not (caps.get("avx512_vnni") or caps.get("avx_vnni")):
        pytest.skip(
            "torch's int8 cuts activations to 7 bits on CPUs without VNNI (mean cosine ~0.98, "
            "see README); recstream runs int8 on ONNX Runtime there"
        )
    encoder = BertEncoder(device="cpu", quantize="int8", runtime=runtime)
    assert (encoder.runtime, encoder.precision) == (runtime, "int8")
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


def test_load_encoder_reads_quantize_runtime_and_threads() -> None:
    """load_encoder hands RECSTREAM_ENCODER_QUANTIZE, _RUNTIME and _THREADS over: torch's
    threads are the process's, ONNX Runtime's its session's (torch's left alone)."""
    before = torch.get_num_threads()
    try:
        settings = Settings(
            device="cpu", encoder_quantize="none", encoder_runtime="torch", encoder_threads=1
        )
        encoder = dense_part(load_encoder(settings))
        assert isinstance(encoder, BertEncoder)
        assert (encoder.runtime, encoder.precision) == ("torch", "float32")
        assert torch.get_num_threads() == 1
        torch.set_num_threads(before)
        onnx = dense_part(load_encoder(settings.model_copy(update={"encoder_runtime": "onnx"})))
        assert isinstance(onnx, BertEncoder) and onnx._onnx is not None
        assert onnx._onnx.session.get_session_options().intra_op_num_threads == 1
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)


def test_encoder_max_tokens_is_zero_or_at_least_64() -> None:
    """0 means the device's default budget (1,024 on the CPU); 1 to 63 are refused."""
    assert BertEncoder(device="cpu", max_tokens=0).max_tokens == 1_024
    with pytest.raises(ValidationError, match="RECSTREAM_ENCODER_MAX_TOKENS"):
        Settings(encoder_max_tokens=10)


def test_zero_threads_leaves_torch_alone() -> None:
    """RECSTREAM_ENCODER_THREADS=0 (the default) keeps torch's own thread count."""
    before = torch.get_num_threads()
    BertEncoder(device="cpu", quantize="none", threads=0)
    assert torch.get_num_threads() == before
    with pytest.raises(EncoderError, match="threads"):
        BertEncoder(device="cpu", threads=-1)
