"""``recstream bench encoder``: recstream's encoder against sentence-transformers, same texts.

Every configuration encodes the same product texts in the same process; rounds are interleaved
(each round runs every configuration once) so a burst of load from elsewhere hits them alike.
The first ``warmup`` rounds are not timed; the figure is the median of the timed rounds.
Agreement is the cosine between each configuration's vector and sentence-transformers' for the
same text (float32, its default batch size of 32): the reference recstream must stay close to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recstream_tools.bench.corpus import product_texts
from recstream_tools.bench.report import LoadMonitor, figure, median, new_result, write_outputs
from stream.settings import Settings

NAME = "encoder"
DEFAULT_VARIANTS = (
    "torch:none/8192,torch:none/2048,torch:int8/2048,onnx:none/1024,onnx:int8/512,"
    "onnx:int8/1024,onnx:int8/2048,onnx:int8/8192,onnx:int8/1024/1"
)
NATIVE_BF16_VARIANTS = "torch:bf16/8192,torch:bf16/2048"
"""Added to the defaults on CPUs that compute bf16 natively (elsewhere it is emulated, slow)."""
ST_BATCH_SIZE = 32
GOAL_RATIO = 2.0
GOAL_AGREEMENT = 0.99

Vectors = npt.NDArray[np.float32]


def default_variants() -> str:
    """The sweep ``--variants`` runs by default on this CPU."""
    from encoders.bert import cpu_capabilities, native_bf16

    native = native_bf16(cpu_capabilities())
    return DEFAULT_VARIANTS + ("," + NATIVE_BF16_VARIANTS if native else "")


@dataclass(frozen=True)
class Variant:
    """One configuration of recstream's encoder: runtime, precision setting, token budget,
    threads."""

    quantize: str
    max_tokens: int
    threads: int | None = None
    """CPU threads; None leaves the runtime's default (one per physical core)."""
    runtime: str = "auto"

    @classmethod
    def parse(cls, spec: str) -> Variant:
        """``[runtime:]quantize/max_tokens[/threads]``, e.g. ``torch:bf16/8192`` or
        ``onnx:int8/1024/1``."""
        runtime, _, rest = spec.strip().rpartition(":")
        parts = rest.split("/")
        if len(parts) not in (2, 3):
            raise ValueError(f"variant {spec!r}: expected [runtime:]quantize/max_tokens[/threads]")
        threads = int(parts[2]) if len(parts) == 3 else None
        return cls(parts[0], int(parts[1]), threads, runtime or "auto")


@dataclass
class _Config:
    label: str
    encode: Callable[[Sequence[str]], Vectors]
    threads: int | None
    info: dict[str, Any]
    runs: list[float]
    vectors: Vectors | None = None


def _unit(v: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    v64 = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v64, axis=1, keepdims=True)
    return np.asarray(v64 / np.maximum(norms, 1e-12), dtype=np.float64)


def _configs(settings: Settings, variants: Sequence[Variant]) -> tuple[list[_Config], str, str]:
    """sentence-transformers first, then the settings' own encoder, then the other variants;
    with the model's name and the device."""
    import torch
    from sentence_transformers import SentenceTransformer

    from encoders.bert import BertEncoder, resolve_model

    source = resolve_model(settings.model)
    default_threads = torch.get_num_threads()
    own = Variant(
        settings.encoder_quantize,
        settings.encoder_max_tokens,
        settings.encoder_threads or None,
        settings.encoder_runtime,
    )
    # one encoder per (runtime, precision setting), and per thread count on ONNX Runtime, whose
    # threads belong to a session (torch's are set per round, process-wide)
    encoders: dict[tuple[str, str, int | None], BertEncoder] = {}
    configs: list[_Config] = []
    seen: set[tuple[str, str, int, int | None]] = set()
    for number, v in enumerate([own, *variants]):
        session_threads = v.threads if v.runtime != "torch" else None
        slot = (v.runtime, v.quantize, session_threads)
        if slot not in encoders:
            encoders[slot] = BertEncoder(
                settings.model,
                device=settings.device,
                max_tokens=v.max_tokens,
                max_seq_length=settings.max_seq_length,
                quantize=v.quantize,
                threads=session_threads or 0,
                runtime=v.runtime,
            )
        enc = encoders[slot]
        budget = v.max_tokens or enc.max_tokens
        key = (enc.runtime, enc.precision, budget, v.threads)
        if key in seen:
            continue
        seen.add(key)
        threads = f", {v.threads} thread(s)" if v.threads else ""
        label = f"recstream {enc.runtime} {enc.precision}, {budget} tokens{threads}"
        configs.append(
            _Config(
                label + (" [settings]" if number == 0 else ""),
                _budgeted(enc, budget),
                v.threads if enc.runtime == "torch" else None,
                {
                    "runtime": enc.runtime,
                    "quantize": v.quantize,
                    "precision": enc.precision,
                    "max_tokens": budget,
                    "threads": v.threads or default_threads,
                    "settings": number == 0,
                },
                [],
            )
        )
    first = next(iter(encoders.values()))
    st = SentenceTransformer(source.location, device=first.device)

    def st_encode(texts: Sequence[str]) -> Vectors:
        out = st.encode(list(texts), batch_size=ST_BATCH_SIZE, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    reference = _Config(
        f"sentence-transformers fp32, batch {ST_BATCH_SIZE}",
        st_encode,
        None,
        {"batch_size": ST_BATCH_SIZE, "precision": "float32"},
        [],
    )
    return [reference, *configs], first.name, first.device


def _budgeted(encoder: Any, max_tokens: int) -> Callable[[Sequence[str]], Vectors]:
    """encode with this token budget (encoders are shared between variants of one precision)."""

    def encode(texts: Sequence[str]) -> Vectors:
        encoder.max_tokens = max_tokens
        return np.asarray(encoder.encode(texts), dtype=np.float32)

    return encode


def _tokenize_s(settings: Settings, texts: Sequence[str]) -> tuple[float, int]:
    """Median time to tokenise every text (what overlapping it with the model could save)."""
    from encoders import load_encoder

    encoder = load_encoder(settings)
    runs, tokens = [], 0
    for _ in range(3):
        started = time.perf_counter()
        tokens = sum(encoder.count_tokens(texts))
        runs.append(time.perf_counter() - started)
    return median(runs), tokens


def run(
    settings: Settings,
    texts: int,
    repeats: int,
    warmup: int,
    variants: Sequence[Variant],
    out_dir: Path,
    data: Path,
) -> dict[str, Any]:
    import torch

    corpus = product_texts(texts, data)
    default_threads = torch.get_num_threads()
    with LoadMonitor() as load:
        configs, model, device = _configs(settings, variants)
        tokenize_s, tokens = _tokenize_s(settings, corpus.texts)
        for number in range(warmup + repeats):
            for c in configs:
                torch.set_num_threads(c.threads or default_threads)
                started = time.perf_counter()
                vectors = c.encode(corpus.texts)
                elapsed = time.perf_counter() - started
                torch.set_num_threads(default_threads)
                if c.vectors is None:
                    c.vectors = vectors
                if number >= warmup:
                    c.runs.append(elapsed)
            timed = "warm-up" if number < warmup else f"timed {number - warmup + 1}/{repeats}"
            print(f"  round {number + 1}/{warmup + repeats} ({timed}) done", flush=True)
    reference = configs[0]
    assert reference.vectors is not None
    ref = _unit(reference.vectors)
    rows = []
    for c in configs:
        assert c.vectors is not None
        agreement = (_unit(c.vectors) * ref).sum(axis=1)
        rate = len(corpus.texts) / median(c.runs)
        rows.append(
            {
                "name": c.label,
                **c.info,
                "sentences_per_s": round(rate, 1),
                "tokens_per_s": round(tokens / median(c.runs), 1),
                "runs_s": [round(r, 3) for r in c.runs],
                "ratio_vs_sentence_transformers": round(median(reference.runs) / median(c.runs), 3),
                "cosine_vs_sentence_transformers": {
                    "mean": round(float(agreement.mean()), 6),
                    "min": round(float(agreement.min()), 6),
                },
            }
        )
    headline = next(r for r in rows[1:] if r["settings"])
    met = (
        headline["ratio_vs_sentence_transformers"] >= GOAL_RATIO
        and headline["cosine_vs_sentence_transformers"]["mean"] >= GOAL_AGREEMENT
    )
    result = new_result(
        NAME,
        model=model,
        device=device,
        texts={
            "count": len(corpus.texts),
            "sources": corpus.sources,
            "tokens": tokens,
            "mean_tokens": round(tokens / len(corpus.texts), 1),
        },
        method={
            "warmup_rounds": warmup,
            "timed_rounds": repeats,
            "figure": "median of the timed rounds; rounds interleave every configuration",
            "torch_threads_default": default_threads,
            "torch_interop_threads": torch.get_num_interop_threads(),
            "max_seq_length": settings.max_seq_length,
        },
        tokenize={
            "s": round(tokenize_s, 4),
            "share_of_settings_encode": round(tokenize_s / median(_settings_runs(configs)), 4),
        },
        reference=rows[0],
        variants=rows[1:],
        headline={
            "name": headline["name"],
            "ratio_vs_sentence_transformers": headline["ratio_vs_sentence_transformers"],
            "cosine_mean": headline["cosine_vs_sentence_transformers"]["mean"],
            "goal": f">= {GOAL_RATIO}x sentence-transformers at mean cosine >= {GOAL_AGREEMENT}",
            "met": met,
        },
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, NAME, out_dir, lambda: _plot(result))]
    return result


def _settings_runs(configs: Sequence[_Config]) -> list[float]:
    return next(c.runs for c in configs[1:] if c.info.get("settings"))


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(width=9.0, height=4.8)
    ax = axes[0][0]
    rows = [result["reference"], *result["variants"]]
    names = [r["name"] for r in rows]
    rates = [r["sentences_per_s"] for r in rows]
    colours = ["0.55"] + ["tab:orange" if r["settings"] else "tab:blue" for r in rows[1:]]
    ax.barh(names, rates, color=colours)
    ax.invert_yaxis()
    for y, r in enumerate(rows):
        note = (
            f" x{r['ratio_vs_sentence_transformers']:.2f}, "
            f"cos mean {r['cosine_vs_sentence_transformers']['mean']:.5f}"
        )
        ax.text(r["sentences_per_s"], y, note, va="center", fontsize=8)
    ax.set_xlim(0, max(rates) * 1.45)
    ax.set_xlabel("sentences/s (median of timed rounds)")
    t = result["texts"]
    ax.set_title(
        f"Encoder throughput on {t['count']} product texts ({t['mean_tokens']} tokens on average)"
    )
    return fig


def summary(result: dict[str, Any]) -> str:
    """The table printed after a run."""
    lines = [
        f"{'configuration':<52} {'sent/s':>8} {'tok/s':>9} {'x ST':>6} {'cos mean':>9} {'min':>8}"
    ]
    for r in [result["reference"], *result["variants"]]:
        cos = r["cosine_vs_sentence_transformers"]
        lines.append(
            f"{r['name']:<52} {r['sentences_per_s']:>8.1f} {r['tokens_per_s']:>9.0f} "
            f"{r['ratio_vs_sentence_transformers']:>6.2f} {cos['mean']:>9.5f} {cos['min']:>8.5f}"
        )
    h = result["headline"]
    lines.append(
        f"settings' encoder: x{h['ratio_vs_sentence_transformers']} at cos {h['cosine_mean']} "
        f"-> goal {h['goal']}: {'met' if h['met'] else 'NOT met'}"
    )
    lines.append(f"load: {result['load']}")
    return "\n".join(lines)
