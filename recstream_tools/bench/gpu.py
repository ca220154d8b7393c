"""``recstream bench gpu``: recstream's CUDA encoder against sentence-transformers on a GPU.

The issue's GPU goals: at least 100,000 sentences/s for all-MiniLM-L6-v2 at about 64 tokens in
bf16, and at least 3x ``SentenceTransformer.encode`` in fp16 (its default batch size) on the same
GPU. Sentences are runs of whole words cut from real product texts (48 to 64 tokens), repeated
in a fixed shuffled order to ``--sentences``. Every configuration encodes the same sentences in
each round; rounds interleave the configurations; the figure is the median of the timed rounds.

Besides the end-to-end rates, two parts are timed alone: tokenising every sentence on the CPU,
and the model's forward passes over batches already packed on the GPU. The pipeline cannot beat
the slower of the two; how close it comes says what limits it.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from recstream_tools.bench.corpus import token_windows
from recstream_tools.bench.report import LoadMonitor, figure, median, new_result, write_outputs
from stream.settings import Settings

NAME = "gpu"
GOAL_RATE = 100_000.0
GOAL_RATIO = 3.0
ST_BATCH_SIZE = 32
ST_LARGE_BATCH = 512

Vectors = npt.NDArray[np.float32]


class NoGpu(RuntimeError):
    """The benchmark was asked for on a machine where torch sees no CUDA device."""


def _gpu(device: str) -> dict[str, Any]:
    import torch

    props = torch.cuda.get_device_properties(torch.device(device))
    info: dict[str, Any] = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 1024**3, 1),
        "multiprocessors": props.multi_processor_count,
        "cuda": torch.version.cuda,
    }
    try:
        driver = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        info["driver"] = driver.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        info["driver"] = None
    return info


def _unit(v: Vectors) -> npt.NDArray[np.float64]:
    v64 = v.astype(np.float64)
    norms = np.maximum(np.linalg.norm(v64, axis=1, keepdims=True), 1e-12)
    return np.asarray(v64 / norms, dtype=np.float64)


def _agreement(vectors: Vectors, reference: Vectors) -> dict[str, float]:
    cos = (_unit(vectors) * _unit(reference)).sum(axis=1)
    return {"mean": round(float(cos.mean()), 6), "min": round(float(cos.min()), 6)}


def _model_only(
    encoder: Any, texts: Sequence[str], repeats: int, sync: Callable[[], None]
) -> float:
    """Sentences/s of the forward passes alone: every batch packed and on the GPU first."""
    import torch

    from encoders.batching import plan_batches
    from encoders.cuda import attention_mask
    from encoders.tokens import pack

    tokens = encoder._fast(texts)
    batches = []
    for rows in plan_batches(tokens.lengths.tolist(), encoder.max_tokens):
        ids, lengths = pack(tokens, rows, encoder._pad_id)
        ids_t = torch.from_numpy(ids).to(encoder.device)
        lengths_t = torch.from_numpy(lengths).to(encoder.device)
        batches.append((ids_t, attention_mask(ids_t, lengths_t)))
    runs = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            sync()
            started = time.perf_counter()
            for ids_t, mask in batches:
                encoder._unit(ids_t, mask)
            sync()
            runs.append(time.perf_counter() - started)
    return len(texts) / median(runs[1:])


def _tokenize_only(
    tokenize: Callable[[Sequence[str]], Any], texts: Sequence[str], repeats: int
) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        tokenize(texts)
        runs.append(time.perf_counter() - started)
    return len(texts) / median(runs)


def run(
    settings: Settings,
    sentences: int,
    target_tokens: int,
    budgets: Sequence[int],
    repeats: int,
    warmup: int,
    st_sentences: int,
    out_dir: Path,
    data: Path,
    device: str | None = None,
    distinct_max: int = 100_000,
) -> dict[str, Any]:
    """``device`` None: the settings' CUDA device (``cuda`` unless it names ``cuda:N``);
    the tests pass ``"cpu"`` to run the whole benchmark small on machines without a GPU, with
    few distinct sentences (``distinct_max``: every window the data gives, about 3,500, else)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from encoders.bert import BertEncoder, resolve_model

    if device is None:
        if not torch.cuda.is_available():
            raise NoGpu("torch sees no CUDA device here: `recstream bench gpu` needs one")
        device = settings.device if settings.device.startswith("cuda") else "cuda"

    def sync() -> None:
        if device != "cpu":
            torch.cuda.synchronize(device)

    with LoadMonitor() as load, contextlib.ExitStack() as cleanup:
        encoder = BertEncoder(
            settings.model,
            device=device,
            max_tokens=settings.encoder_max_tokens,
            max_seq_length=settings.max_seq_length,
            runtime="torch",  # what CUDA runs anyway; on a CPU dry run, so _unit exists
        )
        cleanup.callback(encoder.close)  # the tokenizer worker processes, on any exit
        own_budget = encoder.max_tokens
        corpus = token_windows(distinct_max, target_tokens, encoder.count_tokens, data)
        distinct = corpus.texts
        lengths = np.asarray(encoder.count_tokens(distinct))
        rng = random.Random(20261130)
        work = [distinct[rng.randrange(len(distinct))] for _ in range(sentences)]
        st_work = work[:st_sentences]
        source = resolve_model(settings.model)
        st32 = SentenceTransformer(source.location, device=device)
        st16 = SentenceTransformer(source.location, device=device).half()

        def st(model: Any, batch: int) -> Callable[[Sequence[str]], Vectors]:
            def encode(texts: Sequence[str]) -> Vectors:
                out = model.encode(list(texts), batch_size=batch, show_progress_bar=False)
                return np.asarray(out, dtype=np.float32)

            return encode

        def ours(budget: int) -> Callable[[Sequence[str]], Vectors]:
            def encode(texts: Sequence[str]) -> Vectors:
                encoder.max_tokens = budget
                return encoder.encode(texts)

            return encode

        reference = st(st32, ST_BATCH_SIZE)(distinct)
        configs: list[dict[str, Any]] = [
            {
                "name": f"sentence-transformers fp16, batch {ST_BATCH_SIZE}",
                "encode": st(st16, ST_BATCH_SIZE),
                "texts": st_work,
                "reference": True,
            },
            {
                "name": f"sentence-transformers fp16, batch {ST_LARGE_BATCH}",
                "encode": st(st16, ST_LARGE_BATCH),
                "texts": st_work,
            },
            {
                "name": f"sentence-transformers fp32, batch {ST_BATCH_SIZE}",
                "encode": st(st32, ST_BATCH_SIZE),
                "texts": st_work,
            },
        ]
        for budget in dict.fromkeys([own_budget, *budgets]):
            configs.append(
                {
                    "name": f"recstream {encoder.precision}, {budget} tokens"
                    + (" [settings]" if budget == own_budget else ""),
                    "encode": ours(budget),
                    "texts": work,
                    "budget": budget,
                    "settings": budget == own_budget,
                }
            )
        for c in configs:
            c["runs"] = []
            c["agreement"] = _agreement(c["encode"](distinct), reference)
        for number in range(warmup + repeats):
            for c in configs:
                sync()
                started = time.perf_counter()
                c["encode"](c["texts"])
                sync()
                if number >= warmup:
                    c["runs"].append(time.perf_counter() - started)
            print(f"  round {number + 1}/{warmup + repeats} done", flush=True)
        encoder.max_tokens = own_budget
        parts = {
            "tokenize_only_one_process_sentences_per_s": round(
                _tokenize_only(encoder._fast, work, repeats), 1
            ),
            "tokenize_only_bulk_sentences_per_s": round(
                _tokenize_only(encoder._bulk_tokenizer(), work, repeats), 1
            ),
            "tokenizer_workers": encoder._pool.workers if encoder._pool is not None else 0,
            "model_only_sentences_per_s": round(_model_only(encoder, work, repeats, sync), 1),
            "budget": own_budget,
        }
    st_base = next(c for c in configs if c.get("reference"))
    base_rate = len(st_base["texts"]) / median(st_base["runs"])
    rows = []
    for c in configs:
        rate = len(c["texts"]) / median(c["runs"])
        rows.append(
            {
                "name": c["name"],
                "budget": c.get("budget"),
                "settings": c.get("settings", False),
                "sentences": len(c["texts"]),
                "sentences_per_s": round(rate, 1),
                "tokens_per_s": round(rate * float(lengths.mean()), 1),
                "runs_s": [round(r, 4) for r in c["runs"]],
                "ratio_vs_st_fp16": round(rate / base_rate, 3),
                "cosine_vs_st_fp32": c["agreement"],
            }
        )
    headline = next(r for r in rows if r["settings"])
    result = new_result(
        NAME,
        model=encoder.name,
        device=device,
        gpu=_gpu(device) if device != "cpu" else {"name": "none: a CPU dry run"},
        texts={
            "distinct": len(distinct),
            "sources": corpus.sources,
            "tokens_mean": round(float(lengths.mean()), 1),
            "tokens_min": int(lengths.min()),
            "tokens_max": int(lengths.max()),
            "sentences_timed": sentences,
            "st_sentences_timed": len(st_work),
        },
        method={
            "warmup_rounds": warmup,
            "timed_rounds": repeats,
            "figure": "median of the timed rounds; rounds interleave every configuration",
            "agreement": "cosine to sentence-transformers fp32 (batch 32) on the distinct texts",
            "ratio": f"sentences/s over sentence-transformers fp16, batch {ST_BATCH_SIZE}",
        },
        parts=parts,
        rows=rows,
        headline={
            "name": headline["name"],
            "sentences_per_s": headline["sentences_per_s"],
            "ratio_vs_st_fp16": headline["ratio_vs_st_fp16"],
            "cosine_mean": headline["cosine_vs_st_fp32"]["mean"],
            "goal": f">= {GOAL_RATE:,.0f} sentences/s and >= {GOAL_RATIO}x "
            f"sentence-transformers fp16 (batch {ST_BATCH_SIZE})",
            "rate_met": headline["sentences_per_s"] >= GOAL_RATE,
            "ratio_met": headline["ratio_vs_st_fp16"] >= GOAL_RATIO,
        },
        load=load.summary,
    )
    result["paths"] = [str(p) for p in write_outputs(result, NAME, out_dir, lambda: _plot(result))]
    return result


def _plot(result: dict[str, Any]) -> Any:
    fig, axes = figure(width=9.0, height=4.8)
    ax = axes[0][0]
    rows = result["rows"]
    names = [r["name"] for r in rows]
    rates = [r["sentences_per_s"] for r in rows]
    colours = [
        "0.55" if r["budget"] is None else ("tab:orange" if r["settings"] else "tab:blue")
        for r in rows
    ]
    ax.barh(names, rates, color=colours)
    ax.invert_yaxis()
    ax.axvline(GOAL_RATE, color="tab:red", linestyle="--", linewidth=1)
    for y, r in enumerate(rows):
        note = f" x{r['ratio_vs_st_fp16']:.1f}, cos {r['cosine_vs_st_fp32']['mean']:.4f}"
        ax.text(r["sentences_per_s"], y, note, va="center", fontsize=8)
    ax.set_xlim(0, max(max(rates), GOAL_RATE) * 1.35)
    ax.set_xlabel("sentences/s (median of timed rounds); dashed: the 100,000/s goal")
    t, g = result["texts"], result["gpu"]
    ax.set_title(f"{g['name']}: sentences of {t['tokens_mean']} tokens on average")
    return fig


def summary(result: dict[str, Any]) -> str:
    """The table printed after a run."""
    lines = [f"{'configuration':<46} {'sent/s':>10} {'x ST fp16':>9} {'cos mean':>9} {'min':>8}"]
    for r in result["rows"]:
        cos = r["cosine_vs_st_fp32"]
        lines.append(
            f"{r['name']:<46} {r['sentences_per_s']:>10.0f} {r['ratio_vs_st_fp16']:>9.2f} "
            f"{cos['mean']:>9.5f} {cos['min']:>8.5f}"
        )
    p, h = result["parts"], result["headline"]
    lines.append(
        f"alone: tokenising {p['tokenize_only_one_process_sentences_per_s']:.0f}/s in one "
        f"process, {p['tokenize_only_bulk_sentences_per_s']:.0f}/s with "
        f"{p['tokenizer_workers']} worker processes (CPU); forward passes "
        f"{p['model_only_sentences_per_s']:.0f}/s (GPU, {p['budget']} tokens)"
    )
    lines.append(
        f"settings' encoder: {h['sentences_per_s']:.0f}/s ({'met' if h['rate_met'] else 'NOT met'}"
        f"), x{h['ratio_vs_st_fp16']} ST fp16 ({'met' if h['ratio_met'] else 'NOT met'})"
    )
    lines.append(f"gpu: {result['gpu']}; load: {result['load']}")
    return "\n".join(lines)
