"""``recstream bench ...``: the options of each benchmark, and dispatch.

Imports nothing heavy: each benchmark module (torch, Qdrant, Kafka) loads when it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recstream_tools.bench.report import RESULTS_DIR
from stream.settings import Settings

AddSettings = Callable[[argparse.ArgumentParser], None]
_DATA = Path("../shared/data")


def _sizes(text: str) -> list[int]:
    return [int(v.replace("_", "")) for v in text.split(",") if v.strip()]


def _shares(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def add_bench_parser(sub: Any, add_settings_options: AddSettings, help_text: str) -> None:
    """Add ``bench`` and its sub-commands to the ``recstream`` parser's sub-parsers."""
    bench = sub.add_parser("bench", help=help_text)
    which = bench.add_subparsers(dest="bench_command", required=True)
    out = {"type": Path, "default": RESULTS_DIR, "help": f"results folder [{RESULTS_DIR}]"}

    enc = which.add_parser(
        "encoder", help="recstream's encoder vs sentence-transformers on product texts"
    )
    enc.add_argument("--texts", type=int, default=500, help="texts encoded per round [500]")
    enc.add_argument("--repeats", type=int, default=3, help="timed rounds [3]")
    enc.add_argument("--warmup", type=int, default=1, help="untimed rounds first [1]")
    enc.add_argument(
        "--variants",
        default=None,
        help="comma-separated [runtime:]quantize/max_tokens[/threads] besides the settings' "
        "own (default: torch float32 and int8, ONNX Runtime float32 and int8 at 512 to 8,192 "
        "tokens and on 1 thread, torch bf16 where the CPU computes it natively)",
    )
    enc.add_argument("--data", type=Path, default=_DATA, help=f"shared data folder [{_DATA}]")
    enc.add_argument("--out", **out)
    add_settings_options(enc)

    store = which.add_parser(
        "store", help="upserts/s, top-10 queries/s and memory of each vector store adapter"
    )
    store.add_argument("--sizes", type=_sizes, default=[10_000, 100_000], help="[10000,100000]")
    store.add_argument(
        "--adapters", default="edge,local", help="edge and/or local (qdrant-client local mode)"
    )
    store.add_argument("--upsert-budget-s", type=float, default=150.0, help="per case [150]")
    store.add_argument("--query-budget-s", type=float, default=30.0, help="per case [30]")
    store.add_argument("--queries", type=int, default=2_000, help="queries per case [2000]")
    store.add_argument(
        "--local-location", choices=["disk", "memory"], default="disk", help="local mode [disk]"
    )
    store.add_argument("--out", **out)
    add_settings_options(store)  # only the log settings apply

    threads = which.add_parser(
        "threads", help="the embedded store's calls beside a thread running Python"
    )
    threads.add_argument("--seconds", type=float, default=3.0, help="per case [3]")
    threads.add_argument(
        "--intervals", type=_shares, default=[5.0, 1.0], help="switch intervals, ms [5,1]"
    )
    threads.add_argument("--name", default="threads", help="result file name [threads]")
    threads.add_argument("--out", **out)
    add_settings_options(threads)  # only the log settings apply

    e2e = which.add_parser(
        "e2e", help="events/s and latency, catalog.items to items.neighbours, embedded parts"
    )
    e2e.add_argument("--items", type=int, default=10_000, help="catalogue size [10000]")
    e2e.add_argument(
        "--load", type=float, default=0.5, help="latency phase load, share of throughput [0.5]"
    )
    e2e.add_argument("--latency-seconds", type=float, default=60.0, help="latency phase [60]")
    e2e.add_argument(
        "--max-seconds", type=float, default=600.0, help="throughput phase budget [600]"
    )
    e2e.add_argument(
        "--encoder-sample", type=int, default=1_024, help="texts for the encoder-only rate [1024]"
    )
    e2e.add_argument(
        "--query-rate",
        type=float,
        default=0.0,
        help="similar-item HTTP requests/s served beside the consumer all along (0: none) [0]",
    )
    e2e.add_argument("--name", default=None, help="result file name [e2e-<items>]")
    e2e.add_argument("--out", **out)
    add_settings_options(e2e)

    fresh = which.add_parser(
        "freshness",
        help="latency from a new item's event to its own list at 50%% and 80%% of the drain "
        "rate, the catalogue growing",
    )
    fresh.add_argument("--catalogue", type=int, default=9_000, help="items listed first [9000]")
    fresh.add_argument(
        "--drain-items", type=int, default=3_000, help="items published at once [3000]"
    )
    fresh.add_argument(
        "--loads", type=_shares, default=[0.5, 0.8], help="shares of the drain rate [0.5,0.8]"
    )
    fresh.add_argument("--seconds", type=float, default=20.0, help="per load [20]")
    fresh.add_argument(
        "--base-rate",
        type=float,
        default=None,
        help="items/s the loads are shares of [the drain measured in the run]",
    )
    fresh.add_argument(
        "--trickle-rate", type=float, default=2.0, help="items/s of the trickle profile [2]"
    )
    fresh.add_argument("--trickle-seconds", type=float, default=10.0, help="trickle phase [10]")
    fresh.add_argument(
        "--max-seconds", type=float, default=600.0, help="catalogue and drain budget [600]"
    )
    fresh.add_argument("--data", type=Path, default=_DATA, help=f"shared data folder [{_DATA}]")
    fresh.add_argument("--name", default=None, help="result file name [freshness]")
    fresh.add_argument("--out", **out)
    add_settings_options(fresh)

    beh = which.add_parser(
        "behaviour",
        help="events/s and latency, user.events to users.recommendations, against the catalog "
        "path's drain in the same run",
    )
    beh.add_argument("--items", type=int, default=10_000, help="catalogue size [10000]")
    beh.add_argument(
        "--catalog-events", type=int, default=2_000, help="items through the catalog path [2000]"
    )
    beh.add_argument("--users", type=int, default=5_000, help="shoppers with histories [5000]")
    beh.add_argument("--events", type=int, default=20_000, help="throughput phase events [20000]")
    beh.add_argument(
        "--load", type=float, default=0.5, help="latency phase load, share of throughput [0.5]"
    )
    beh.add_argument("--latency-seconds", type=float, default=30.0, help="latency phase [30]")
    beh.add_argument("--max-seconds", type=float, default=600.0, help="per drain [600]")
    beh.add_argument("--name", default=None, help="result file name [behaviour-<items>]")
    beh.add_argument("--out", **out)
    add_settings_options(beh)

    bat = which.add_parser(
        "batches",
        help="ms per behaviour batch in the two behaviour processors alone (no broker, one "
        "thread): the cost of a batch without the pipeline's noise",
    )
    bat.add_argument("--items", type=int, default=10_000, help="catalogue size [10000]")
    bat.add_argument("--users", type=int, default=2_000, help="shoppers with histories [2000]")
    bat.add_argument("--events", type=int, default=8_192, help="timed events [8192]")
    bat.add_argument("--batch", type=int, default=256, help="events per batch [256]")
    bat.add_argument("--name", default=None, help="result file name [behaviour-batches-<items>]")
    bat.add_argument("--out", **out)
    add_settings_options(bat)

    srv = which.add_parser(
        "serve", help="the HTTP API's latency per endpoint at a steady request rate"
    )
    srv.add_argument("--sizes", type=_sizes, default=[10_000, 100_000], help="[10000,100000]")
    srv.add_argument("--users", type=int, default=2_000, help="shoppers with histories [2000]")
    srv.add_argument(
        "--base-items", type=int, default=1_000, help="items encoded; the rest jittered [1000]"
    )
    srv.add_argument("--rate", type=float, default=50.0, help="requests per second [50]")
    srv.add_argument("--seconds", type=float, default=20.0, help="per endpoint and size [20]")
    srv.add_argument("--name", default=None, help="result file name [serve]")
    srv.add_argument("--out", **out)
    add_settings_options(srv)

    gpu = which.add_parser(
        "gpu", help="recstream's CUDA encoder vs sentence-transformers fp16, ~64-token sentences"
    )
    gpu.add_argument("--sentences", type=int, default=200_000, help="per round [200000]")
    gpu.add_argument("--tokens", type=int, default=64, help="sentence length target [64]")
    gpu.add_argument(
        "--budgets",
        type=_sizes,
        default=[8_192, 16_384, 32_768, 65_536, 131_072],
        help="token budgets tried besides the settings' own [8192,...,131072]",
    )
    gpu.add_argument("--repeats", type=int, default=3, help="timed rounds [3]")
    gpu.add_argument("--warmup", type=int, default=1, help="untimed rounds first [1]")
    gpu.add_argument(
        "--st-sentences", type=int, default=20_000, help="sentences per round for ST [20000]"
    )
    gpu.add_argument("--data", type=Path, default=_DATA, help=f"shared data folder [{_DATA}]")
    gpu.add_argument("--out", **out)
    add_settings_options(gpu)

    scaling = which.add_parser(
        "scaling", help="catalog processor ms/event with 10,000 vs 100,000 items stored"
    )
    scaling.add_argument("--sizes", type=_sizes, default=[10_000, 100_000], help="[10000,100000]")
    scaling.add_argument("--batch", type=int, default=256, help="new items per batch [256]")
    scaling.add_argument("--batches", type=int, default=2, help="timed batches per size [2]")
    scaling.add_argument(
        "--base-items", type=int, default=2_000, help="sample items encoded for preloading [2000]"
    )
    scaling.add_argument(
        "--copies",
        type=int,
        default=None,
        help="preloaded items per base item: each size then gets size/N base items, the same "
        "neighbourhood density at every size [off: --base-items at every size]",
    )
    scaling.add_argument(
        "--optimize", action="store_true", help="build the store's HNSW index after preloading"
    )
    scaling.add_argument("--name", default="scaling", help="result file name [scaling]")
    scaling.add_argument("--out", **out)
    add_settings_options(scaling)

    mig = which.add_parser(
        "migrate", help="how fast recstream migrate embeds a catalogue again into a generation"
    )
    mig.add_argument("--items", type=int, default=10_000, help="catalogue size [10000]")
    mig.add_argument("--shoppers", type=int, default=2_000, help="shopper histories [2000]")
    mig.add_argument(
        "--to-model", default=None, metavar="DIR", help="the new model [the settings' model]"
    )
    mig.add_argument(
        "--to-lexical-weight",
        type=float,
        default=None,
        help="the new lexical weight [0.4, or 0.5 when the settings' is 0.4]",
    )
    mig.add_argument(
        "--layout",
        action="store_true",
        help="the move of hybrid vectors kept whole to the sparse layout (same settings: "
        "vectors copied), against embedding every item again",
    )
    mig.add_argument("--data", type=Path, default=_DATA, help=f"shared data folder [{_DATA}]")
    mig.add_argument("--out", **out)
    add_settings_options(mig)


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    """Run the benchmark ``args.bench_command`` names; print its table and where results went."""
    if args.bench_command == "encoder":
        from recstream_tools.bench import encoder

        spec = args.variants if args.variants is not None else encoder.default_variants()
        variants = [encoder.Variant.parse(v) for v in spec.split(",") if v.strip()]
        result = encoder.run(
            settings, args.texts, args.repeats, args.warmup, variants, args.out, args.data
        )
        print(encoder.summary(result))
    elif args.bench_command == "store":
        from recstream_tools.bench import store

        adapters = [a.strip() for a in args.adapters.split(",") if a.strip()]
        unknown = set(adapters) - set(store.ADAPTERS)
        if unknown:
            print(f"recstream: unknown adapter(s) {sorted(unknown)}: use edge, local")
            return 2
        result = store.run(
            adapters,
            args.sizes,
            args.upsert_budget_s,
            args.query_budget_s,
            args.queries,
            args.local_location,
            args.out,
        )
        print(store.summary(result))
    elif args.bench_command == "threads":
        from recstream_tools.bench import threads

        result = threads.run(args.seconds, args.out, args.intervals, args.name)
        print(threads.summary(result))
    elif args.bench_command == "migrate":
        from recstream_tools.bench import migrate

        if args.layout and (args.to_model or args.to_lexical_weight is not None):
            print("recstream: --layout keeps the settings' model and mix: no --to-*")
            return 2
        weight = args.to_lexical_weight
        if weight is None:
            weight = 0.5 if settings.lexical_weight == 0.4 else 0.4
        change = {"model": args.to_model or settings.model, "lexical_weight": weight}
        target = settings.model_copy(update=change)
        result = migrate.run(
            settings, args.items, args.shoppers, target, args.out, args.data, args.layout
        )
        print(migrate.summary(result))
    elif args.bench_command == "e2e":
        from recstream_tools.bench import e2e

        result = e2e.run(
            settings,
            args.items,
            args.load,
            args.latency_seconds,
            args.max_seconds,
            args.encoder_sample,
            args.out,
            args.name,
            args.query_rate,
        )
        print(e2e.summary(result))
    elif args.bench_command == "freshness":
        from recstream_tools.bench import freshness

        result = freshness.run(
            settings,
            args.catalogue,
            args.drain_items,
            args.loads,
            args.seconds,
            args.trickle_rate,
            args.trickle_seconds,
            args.max_seconds,
            args.data,
            args.out,
            args.name,
            args.base_rate,
        )
        print(freshness.summary(result))
    elif args.bench_command == "behaviour":
        from recstream_tools.bench import behaviour

        result = behaviour.run(
            settings,
            args.items,
            args.catalog_events,
            args.users,
            args.events,
            args.load,
            args.latency_seconds,
            args.max_seconds,
            args.out,
            args.name,
        )
        print(behaviour.summary(result))
    elif args.bench_command == "batches":
        from recstream_tools.bench import batches

        result = batches.run(
            settings, args.items, args.users, args.events, args.batch, args.out, args.name
        )
        print(batches.summary(result))
    elif args.bench_command == "serve":
        from recstream_tools.bench import serve

        result = serve.run(
            settings,
            args.sizes,
            args.users,
            args.base_items,
            args.rate,
            args.seconds,
            args.out,
            args.name,
        )
        print(serve.summary(result))
    elif args.bench_command == "gpu":
        from recstream_tools.bench import gpu

        try:
            result = gpu.run(
                settings,
                args.sentences,
                args.tokens,
                args.budgets,
                args.repeats,
                args.warmup,
                args.st_sentences,
                args.out,
                args.data,
            )
        except gpu.NoGpu as exc:
            print(f"recstream: {exc}")
            return 2
        print(gpu.summary(result))
    elif args.bench_command == "scaling":
        from recstream_tools.bench import scaling

        result = scaling.run(
            settings,
            args.sizes,
            args.batch,
            args.batches,
            args.base_items,
            args.optimize,
            args.out,
            args.name,
            copies=args.copies,
        )
        print(scaling.summary(result))
    else:  # pragma: no cover - argparse allows only the commands above
        raise ValueError(args.bench_command)
    for path in result["paths"]:
        print(f"results: {path}")
    return 0
