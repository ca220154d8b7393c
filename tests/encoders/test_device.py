"""resolve_device: which device and precision a RECSTREAM_DEVICE value gives on a machine."""

from __future__ import annotations

import pytest

from encoders.device import resolve_device
from encoders.errors import EncoderError


@pytest.mark.parametrize(
    ("setting", "cuda", "bf16", "expected"),
    [
        ("auto", False, False, ("cpu", "float32")),
        ("auto", True, True, ("cuda", "bfloat16")),
        ("auto", True, False, ("cuda", "float16")),
        ("cpu", False, False, ("cpu", "float32")),
        ("cpu", True, True, ("cpu", "float32")),
        ("cuda", True, True, ("cuda", "bfloat16")),
        ("cuda", True, False, ("cuda", "float16")),
        ("cuda:1", True, True, ("cuda:1", "bfloat16")),
        ("cuda:0", True, False, ("cuda:0", "float16")),
    ],
)
def test_resolution_table(setting: str, cuda: bool, bf16: bool, expected: tuple[str, str]) -> None:
    """auto prefers CUDA in bf16 (fp16 without bf16), else CPU fp32; explicit values are kept."""
    assert resolve_device(setting, cuda_available=cuda, bf16_supported=bf16) == expected


@pytest.mark.parametrize("setting", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_an_actionable_error(setting: str) -> None:
    """Asking for CUDA where torch has none fails at start-up and says what to set instead."""
    with pytest.raises(EncoderError, match=r"CUDA is not available.*RECSTREAM_DEVICE=cpu"):
        resolve_device(setting, cuda_available=False, bf16_supported=False)


@pytest.mark.parametrize("setting", ["gpu", "mps", "cuda:x", ""])
def test_unknown_setting_is_rejected(setting: str) -> None:
    """Values outside auto/cpu/cuda/cuda:N are errors, not silent CPU fallbacks."""
    with pytest.raises(EncoderError, match="auto, cpu, cuda or cuda:N"):
        resolve_device(setting, cuda_available=True, bf16_supported=True)
