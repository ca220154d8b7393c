"""The benchmarks' parts: option parsing, preloaded lists, percentiles, results, the query load."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from recstream_tools.bench import threads
from recstream_tools.bench.arrivals import item_version
from recstream_tools.bench.encoder import Variant
from recstream_tools.bench.report import LoadMonitor, new_result, percentiles, write_json
from recstream_tools.bench.scaling import exact_lists, jittered
from schemas.outputs import neighbour_list_json
from stream.cli import build_parser
from stream.settings import Settings


def test_bench_commands_parse_with_their_options() -> None:
    """Each benchmark is a sub-command of `recstream bench` with its own options."""
    parser = build_parser()
    args = parser.parse_args(["bench", "store", "--sizes", "10_000,100000", "--adapters", "edge"])
    assert (args.bench_command, args.sizes, args.adapters) == ("store", [10_000, 100_000], "edge")
    args = parser.parse_args(["bench", "e2e", "--items", "500", "--batch-max-wait-ms", "20"])
    assert (args.items, args.setting_batch_max_wait_ms, args.query_rate) == (500, "20", 0.0)
    assert parser.parse_args(["bench", "e2e", "--query-rate", "50"]).query_rate == 50.0
    args = parser.parse_args(["bench", "encoder", "--variants", "int8/2048"])
    assert args.variants == "int8/2048"
    assert parser.parse_args(["bench", "scaling"]).sizes == [10_000, 100_000]
    args = parser.parse_args(["bench", "freshness", "--loads", "0.5,0.9", "--seconds", "5"])
    assert (args.bench_command, args.loads, args.seconds) == ("freshness", [0.5, 0.9], 5.0)
    assert parser.parse_args(["bench", "freshness"]).loads == [0.5, 0.8]
    args = parser.parse_args(["bench", "batches", "--items", "500", "--batch", "64"])
    assert (args.bench_command, args.items, args.batch, args.events) == ("batches", 500, 64, 8192)
    args = parser.parse_args(["bench", "serve", "--sizes", "2000", "--rate", "20"])
    assert (args.bench_command, args.sizes, args.rate, args.seconds) == ("serve", [2000], 20.0, 20)
    args = parser.parse_args(["bench", "migrate", "--items", "500", "--to-lexical-weight", "0.3"])
    assert (args.bench_command, args.items, args.to_lexical_weight) == ("migrate", 500, 0.3)
    assert not args.layout and parser.parse_args(["bench", "migrate", "--layout"]).layout
    args = parser.parse_args(["bench", "threads", "--seconds", "0.5", "--intervals", "5,0.5"])
    assert (args.bench_command, args.seconds, args.intervals) == ("threads", 0.5, [5.0, 0.5])


def test_paced_requests_count_latency_from_when_they_were_due() -> None:
    """A slow answer delays the requests behind it, and that wait is in their latency."""
    from recstream_tools.bench.report import paced

    calls: list[float] = []

    def send() -> httpx.Response:
        calls.append(time.perf_counter())
        time.sleep(0.05 if len(calls) == 1 else 0.0)  # the first takes 5 intervals
        return httpx.Response(200)

    latencies, statuses = paced(send, rate=100.0, seconds=0.1)
    assert statuses == {"200": len(latencies)} and len(latencies) == 10
    assert latencies[0] >= 50.0  # its own time
    assert latencies[1] >= 40.0  # due at 10 ms, sent after the first answered at ~50 ms
    assert latencies[-1] < latencies[1]  # the queue drained

    slow: list[float] = []

    def stuck() -> httpx.Response:
        slow.append(time.perf_counter())
        time.sleep(0.06)
        return httpx.Response(200)

    latencies, _ = paced(stuck, rate=100.0, seconds=0.1)  # 10 due, each taking 6 intervals
    assert len(latencies) < 10  # nothing sent past twice the time


def test_variant_spec() -> None:
    """An encoder variant is [runtime:]quantize/max_tokens with optional threads; anything else
    is refused."""
    assert Variant.parse("bf16/8192") == Variant("bf16", 8192, None)
    assert Variant.parse(" none/2048/1 ") == Variant("none", 2048, 1)
    assert Variant.parse("onnx:int8/1024/1") == Variant("int8", 1024, 1, "onnx")
    with pytest.raises(ValueError, match="quantize/max_tokens"):
        Variant.parse("bf16")


def test_jitter_leaves_a_hybrid_vectors_n_grams_as_they_are() -> None:
    """Preloaded copies of hybrid vectors keep their sparse n-gram part (noise there would make
    it dense) and unit length; the model's part moves."""
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((3, 8)).astype(np.float32)
    lexical = np.zeros((3, 32), dtype=np.float32)
    lexical[:, [1, 5, 9]] = 1.0
    parts = [0.6 * dense / np.linalg.norm(dense, axis=1, keepdims=True), 0.8 / 3**0.5 * lexical]
    base = np.hstack(parts).astype(np.float32)
    vectors = jittered(base, 7, seed=1, lexical=32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(vectors[:, 8:], base[np.arange(7) % 3, 8:])
    assert not np.allclose(vectors[:, :8], base[np.arange(7) % 3, :8])


@pytest.mark.parametrize("n", [3_000, 24_000])
def test_exact_lists_match_brute_force(n: int) -> None:
    """Preloaded lists are each row's k best other rows, best first, never the row itself:
    below the index's clustering threshold (a full product) and above it (clusters, in less
    memory than one 1,024-row block of scores, which at 1,000,000 items was 4 GB)."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((200, 16)).astype(np.float32)
    vectors = jittered(base / np.linalg.norm(base, axis=1, keepdims=True), n, seed=2)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    tracemalloc.start()
    try:
        ids, scores = exact_lists(vectors, 5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if n > 20_000:  # clustered: less than one 1,024-row block of scores (the brute force's)
        assert peak < 1_024 * n * 4, f"{peak / 1e6:.0f} MB"
    for i in (0, 1023, 1024, n // 2, n - 1):  # rows on both sides of a chunk boundary
        sims = vectors @ vectors[i]
        sims[i] = -np.inf
        assert i not in ids[i]
        np.testing.assert_allclose(scores[i], np.sort(sims)[::-1][:5], rtol=1e-6)
        np.testing.assert_allclose(sims[ids[i]], scores[i], rtol=1e-6)
        assert np.all(np.diff(scores[i]) <= 0)


def test_percentiles_interpolate() -> None:
    """p50/p95/p99 of 1..100 ms, as numpy interpolates them; none for no values."""
    assert percentiles([float(v) for v in range(1, 101)]) == {
        "p50": 50.5,
        "p95": 95.0,
        "p99": 99.0,
    }
    assert percentiles([]) == {}


def test_result_names_machine_versions_and_load(tmp_path: Path) -> None:
    """A written result names the machine, the versions and the load it ran under."""
    with LoadMonitor() as load:
        pass
    path = write_json(new_result("demo", model="m", device="cpu", load=load.summary), "x", tmp_path)
    written = json.loads(path.read_text())
    assert written["machine"]["logical_cpus"] >= 1
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    flags = [line.split(":", 1)[1].split() for line in lines if line.startswith("flags")]
    if flags:  # x86 Linux: the features that decide the encoder's precision are named
        for feature in ("avx2", "avx512_bf16", "amx_bf16"):
            assert (feature in written["machine"]["cpu_features"]) == (feature in flags[0])
    assert written["versions"]["recstream"]
    assert "loadavg_1m_start" in written["load"]


def test_gpu_bench_refuses_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    """Where torch sees no GPU, `recstream bench gpu` says so and exits 2 (CI has no GPU)."""
    import torch

    from stream.cli import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the refusal cannot happen here")
    assert main(["bench", "gpu", "--sentences", "10"]) == 2
    assert "needs one" in capsys.readouterr().out


def test_gpu_bench_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    """The GPU benchmark's whole procedure, small and on the CPU (its figures mean nothing
    here): every configuration timed, agreement with sentence-transformers fp32, the parts timed
    alone, and the JSON and PNG written."""
    from recstream_tools.bench import gpu
    from stream.settings import Settings

    result = gpu.run(
        Settings(device="cpu"),
        sentences=40,
        target_tokens=64,
        budgets=[512],
        repeats=1,
        warmup=0,
        st_sentences=8,
        out_dir=tmp_path,
        data=Path("../shared/data"),
        device="cpu",
        distinct_max=24,
    )
    names = [r["name"] for r in result["rows"]]
    assert names[:3] == [
        "sentence-transformers fp16, batch 32",
        "sentence-transformers fp16, batch 512",
        "sentence-transformers fp32, batch 32",
    ]
    assert sum(r["settings"] for r in result["rows"]) == 1
    assert result["rows"][2]["cosine_vs_st_fp32"]["min"] > 0.99999  # the reference itself
    ours = [r for r in result["rows"] if r["budget"] is not None]
    assert {r["budget"] for r in ours} == {1_024, 512}
    assert all(r["cosine_vs_st_fp32"]["mean"] > 0.98 for r in ours)
    assert result["rows"][0]["ratio_vs_st_fp16"] == 1.0
    assert 48 <= result["texts"]["tokens_min"] <= result["texts"]["tokens_max"] <= 64
    assert result["parts"]["tokenize_only_one_process_sentences_per_s"] > 0
    assert result["parts"]["model_only_sentences_per_s"] > 0
    written = json.loads((tmp_path / "gpu.json").read_text())
    assert written["headline"]["name"] == result["headline"]["name"]
    # the PNG needs matplotlib (the bench extra; `make test` installs only the test extra)
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "gpu.png").stat().st_size > 0
    else:
        assert not (tmp_path / "gpu.png").exists()


def test_threads_bench_times_each_call_alone_and_beside_a_busy_thread(tmp_path: Path) -> None:
    """A tiny run: every call at both intervals, each timed alone and beside the busy thread,
    the interval given back, the JSON written."""
    before = sys.getswitchinterval()
    result = threads.run(0.05, tmp_path, (5.0, 1.0))
    assert sys.getswitchinterval() == before
    rows = result["table"]
    assert {r["switch_interval_ms"] for r in rows} == {5.0, 1.0}
    assert len(rows) == 6 and all(r["alone_ms"] > 0 and r["beside_busy_ms"] > 0 for r in rows)
    assert all(r["busy_thread_m_steps_per_s"] > 0 for r in rows)
    assert json.loads((tmp_path / "threads.json").read_text())["table"] == rows
    assert "upsert 256 items" in threads.summary(result)


@pytest.mark.parametrize("version", [None, 0, 7, 123_456_789])
@pytest.mark.parametrize("item_id", ["sku-1", 'x","item_version":999,"y', "\u00e9t\u00e9 \\ , }"])
def test_the_readers_item_version_is_what_json_reads(version: int | None, item_id: str) -> None:
    """The benchmark reader's shortcut gives the version a JSON parser reads, whatever the
    ids hold (one that spells the field too), and falls back to parsing other layouts."""
    value = neighbour_list_json(
        item_id, [(item_id, 0.5), ("b", 0.25)], "m", version, datetime.now(UTC)
    )
    assert item_version(value) == json.loads(value)["item_version"] == version
    spaced = json.dumps({"item_version": version, "item_id": item_id}).encode()
    assert item_version(spaced) == version


def test_product_items_fall_back_to_generated_items_without_data(tmp_path: Path) -> None:
    """Without the shared data, the freshness benchmark's items are generated ones, numbered."""
    from recstream_tools.bench.corpus import product_items
    from schemas.catalog import Item

    items, sources = product_items(5, tmp_path)
    assert sources == {"generated_sample_items": 5}
    assert [i["item_id"] for i in items] == [f"p-{n:07d}" for n in range(1, 6)]
    assert all(Item.model_validate(i).title for i in items)


def test_product_items_come_again_as_variants_when_the_names_run_out(tmp_path: Path) -> None:
    """Past the data's product names, the same names in the same order as variants, every
    title distinct: a later stretch of items is of the kind the first one was."""
    from recstream_tools.bench.corpus import product_items

    (tmp_path / "abt_buy").mkdir()
    rows = "id,name,description,price\n" + "".join(
        f"{n},{name},,\n" for n, name in enumerate(["Sony TV 40in", "Bose QC35", "Canon G7"])
    )
    (tmp_path / "abt_buy" / "Abt.csv").write_text(rows, encoding="latin-1")
    items, sources = product_items(8, tmp_path)
    titles = [i["title"] for i in items]
    assert sources == {"abt_buy": 3, "abt_buy_variant": 5}
    assert len(set(titles)) == 8
    assert titles[3:6] == [f"{t} - Black" for t in titles[:3]]
    assert titles[6:] == [f"{t} - White" for t in titles[:2]]


def test_query_load_asks_a_real_api_at_its_rate(tmp_path: Path) -> None:
    """The load beside ``bench e2e --query-rate``: similar-item requests to a real server on
    the store, answered 200 for a stored item and 404 for one not listed yet."""
    from recstream_tools.bench.queryload import QueryLoad
    from stream.collections import ITEMS, ensure_collections
    from stream.settings import Settings
    from stream.store import StoredPoint
    from stream.store.edge import EdgeStore

    store = EdgeStore(tmp_path / "qdrant")
    try:
        ensure_collections(store, 4)
        store.upsert(
            ITEMS,
            [
                StoredPoint(k, {"item_id": k, "in_stock": True}, np.eye(4, dtype=np.float32)[i])
                for i, k in enumerate(["a", "b", "c"])
            ],
        )
        load = QueryLoad(Settings(), store, None, ["a", "unknown"], rate=40.0).start()
        time.sleep(1.0)
        result = load.stop()
    finally:
        store.close()
    assert 1 <= result["requests"] <= 45  # never ahead of its schedule (40/s, ~1 s)
    assert set(result["statuses"]) == {"200", "404"}
    assert sum(result["statuses"].values()) == result["requests"]


def test_batches_bench_times_both_processors(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """`recstream bench batches` on a tiny catalogue: every timed batch has both parts timed and
    published activities, and the JSON says so."""
    from recstream_tools.bench import batches

    result = batches.run(make_settings(), 300, 40, 64, 32, tmp_path, progress=lambda _: None)
    written = json.loads((tmp_path / "behaviour-batches-300.json").read_text())
    assert written["batches"] == result["batches"] == 2
    assert all(b["behaviour_ms"] > 0 and b["activities"] > 0 for b in written["batch_ms"])
    assert written["per_batch"]["stats_ms"]["p50"] > 0


def test_migrate_bench_times_a_verified_build(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """`recstream bench migrate` on a tiny catalogue: the build it times was verified whole
    (it raises otherwise), into another lexical mix, and the JSON holds both rates."""
    from recstream_tools.bench import migrate

    settings = make_settings()
    target = settings.model_copy(update={"lexical_weight": 0.4})
    result = migrate.run(settings, 120, 30, target, tmp_path, tmp_path / "no-data")
    written = json.loads((tmp_path / "migrate.json").read_text())
    assert written["items"] == result["items"] == 120 and written["shoppers"] == 30
    assert written["target"]["lexical_weight"] == 0.4
    assert written["build_items_per_s"] > 0 and written["encode_only_items_per_s"] > 0


def test_migrate_bench_times_the_move_to_the_sparse_layout_against_embedding_again(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    """`recstream bench migrate --layout`: from hybrid vectors kept whole, the move with the
    same settings copies the vectors (both builds verified whole), and the JSON holds its time
    and that of embedding every item again."""
    from recstream_tools.bench import migrate

    settings = make_settings()
    result = migrate.run(settings, 120, 30, settings, tmp_path, tmp_path / "no-data", layout=True)
    written = json.loads((tmp_path / "migrate.json").read_text())
    assert written["copied"] is True and result["items"] == 120
    assert written["build_s"] > 0 and written["embedded_again_s"] > 0
