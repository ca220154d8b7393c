"""The ``recstream`` command. Every setting is also an option: ``--kafka-bootstrap`` and so on."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from stream.settings import SECRET_SETTINGS, Settings

_SETTINGS_HELP = "settings (each also RECSTREAM_<NAME> in the environment)"
_BENCH_HELP = "benchmarks: write bench/results/<name>.json and <name>.png"
_ONLINE_RETAIL = "../shared/data/online_retail/online_retail.csv.gz"
_SHARED_DATA = "../shared/data"


class _Parser(argparse.ArgumentParser):
    """argparse, whose error messages quote the arguments they could not place: a mistyped
    secret option (``--qdrant-api-ke=...``, ``--qdrant-api-keyy VALUE``) would print the secret.
    Messages name the options only: ``=value`` is cut, other words of unrecognised arguments are
    left out, and a rejected choice longer than a command name is not quoted."""

    def error(self, message: str) -> NoReturn:
        message = re.sub(r"(--?[\w-]+)=\S+", r"\1=...", message)
        unrecognised = "unrecognized arguments: "
        if message.startswith(unrecognised):
            words = message[len(unrecognised) :].split()
            message = unrecognised + " ".join(w if w.startswith("-") else "..." for w in words)
        message = re.sub(
            r"invalid choice: '([^']{13,})'",
            lambda m: f"invalid choice of {len(m.group(1))} characters",
            message,
        )
        super().error(message)


class _SecretRefused(argparse.Action):
    """A secret given as an option: refused with what to do instead, without echoing it."""

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        variable = f"RECSTREAM_{self.dest.upper()}"
        parser.exit(
            2,
            f"{parser.prog}: {self.option_strings[0]} is not accepted: other users can read a "
            f"command line; set {variable} or {variable}_FILE (a file holding it)\n",
        )


SETTING_GROUPS: dict[str, tuple[str, ...]] = {
    "kafka": ("kafka_", "group_id", "topic_", "max_message_bytes"),
    "store": ("qdrant_", "generation_"),
    "encoder": ("model", "device", "encoder_", "max_seq_length", "lexical_"),
    "batching": ("batch_", "behaviour_batch_", "stats_batch_"),
    "lists": (
        "neighbours_k",
        "recommendations_n",
        "neighbour_search",
        "neighbour_precision",
        "neighbour_cluster_order",
        "list_stage",
        "single_writer",
        "reverse_",
        "repair_sweep_",
        "lists_",
    ),
    "behaviour": ("weight_", "profile_", "history_max", "popularity_", "cooccurrence_"),
    "ranking": ("rank_", "learned_"),
    "failures": ("retry_", "shutdown_"),
    "startup": ("startup_",),
    "http": ("http_",),
    "logs": ("log_",),
}
"""Settings by what they concern (a name, or the start of names): a command lists as options
only the groups it uses; every setting is in one group (tested)."""


def settings_of(*groups: str) -> list[str]:
    """The settings of these groups (every setting when none is named), in declaration order."""
    if not groups:
        return list(Settings.model_fields)
    prefixes = [p for g in groups for p in SETTING_GROUPS[g]]
    return [n for n in Settings.model_fields if any(n.startswith(p) for p in prefixes)]


def _add_settings_options(parser: argparse.ArgumentParser, *groups: str) -> None:
    """A ``--flag`` for each setting of ``groups`` (each setting, when none is named)."""
    group = parser.add_argument_group(_SETTINGS_HELP)
    for name in settings_of(*groups):
        info = Settings.model_fields[name]
        flag = "--" + name.replace("_", "-")
        if name in SECRET_SETTINGS:
            group.add_argument(flag, dest=name, action=_SecretRefused, help=argparse.SUPPRESS)
            continue
        default = info.default if info.default is not None else "unset"
        secret = "password" in name or "api_key" in name
        group.add_argument(
            flag,
            dest=f"setting_{name}",
            metavar=name.upper(),
            default=None,
            help=f"[default: {'***' if secret and default != 'unset' else default}] "
            + (info.description or ""),
        )


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return Settings(**overrides)


def _invalid_settings(exc: ValidationError) -> str:
    """What is wrong, one line per error, naming the option and variable to change.

    pydantic's own text repeats the input, which for a cross-field check is every setting given,
    secrets included: leave inputs out.
    """
    lines = ["recstream: invalid settings:"]
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        names = [str(part) for part in error["loc"]]
        if names:
            name = names[0]
            where = f"{name} (--{name.replace('_', '-')}, RECSTREAM_{name.upper()})"
        else:
            where = "settings"
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


def build_parser(bench: bool = True) -> argparse.ArgumentParser:
    """The whole parser; ``bench`` False leaves the benchmarks' options out."""
    parser = _Parser(
        prog="recstream",
        description=(
            "Real-time similar items and recommendations: Kafka in, BERT + Qdrant, Kafka out."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the whole pipeline on embedded parts, no set-up")
    demo.add_argument("--items", type=int, default=1200, help="sample catalogue size")
    demo.add_argument("--show", type=int, default=5, help="neighbour lists to print")
    _add_settings_options(demo)

    run = sub.add_parser("run", help="run the production consumers")
    run.add_argument(
        "which",
        choices=["catalog", "behaviour", "all"],
        help="catalog (items in, similar-item lists out), behaviour (shopper events in, "
        "recommendations out; and the item-stats consumer), all (the three in one process)",
    )
    _add_settings_options(run)

    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API alone (similar items, recommendations, search, health, "
        "metrics) against the configured store",
    )
    _add_settings_options(serve)

    broker = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (foreground)")
    broker.add_argument("--port", type=int, default=9092, help="port on 127.0.0.1 [9092]")

    evaluation = sub.add_parser("eval", help="offline evaluation on real data")
    eval_sub = evaluation.add_subparsers(dest="eval_command", required=True)
    recs = eval_sub.add_parser(
        "recommendations",
        help="temporal-split evaluation of recommendations against baselines (Online Retail, "
        "or a shop's own files)",
    )
    recs.add_argument(
        "--data", type=Path, default=Path(_ONLINE_RETAIL), help=f"Online Retail [{_ONLINE_RETAIL}]"
    )
    recs.add_argument(
        "--interactions",
        type=Path,
        default=None,
        help="a shop's interactions (CSV or JSON lines: user_id, item_id, timestamp, type); "
        "with --items, instead of --data",
    )
    recs.add_argument("--items", type=Path, default=None, help="a shop's items (item_id, title)")
    recs.add_argument("--cutoff", default="2011-10-01", help="ISO date or time, UTC [2011-10-01]")
    recs.add_argument("--max-users", type=int, default=None, help="fixed-seed sample of shoppers")
    recs.add_argument("--max-rows", type=int, default=None, help="read only the first CSV rows")
    recs.add_argument("--out", type=Path, default=Path("bench/results"), help="[bench/results]")
    recs.add_argument("--workers", type=int, default=None, help="processes [one per CPU]")
    recs.add_argument(
        "--samples", type=int, default=200, help="weight vectors tried per grid point"
    )
    _add_settings_options(recs, "encoder", "behaviour", "ranking", "lists", "logs")
    neighbours = eval_sub.add_parser(
        "neighbours",
        help="similar-item quality: Abt-Buy twin recall@1/5/10 (test split), Flipkart "
        "category precision@10 and Online Retail later co-purchases, TF-IDF and the encoder",
    )
    neighbours.add_argument(
        "--data",
        type=Path,
        default=Path(_SHARED_DATA),
        help=f"abt_buy/, flipkart/, online_retail/ [{_SHARED_DATA}]",
    )
    neighbours.add_argument(
        "--cutoff",
        default="2011-10-01",
        help="Online Retail: co-purchases from this date on are the answer [2011-10-01]",
    )
    neighbours.add_argument(
        "--until",
        default=None,
        help="Online Retail: only co-purchases before this date or time (UTC unless it says; "
        "with --cutoff, a validation window before the test period, to choose a fine-tune "
        "on) [the data's end]",
    )
    neighbours.add_argument(
        "--out", type=Path, default=Path("bench/results"), help="[bench/results]"
    )
    neighbours.add_argument(
        "--lexical-only", action="store_true", help="TF-IDF only: load no model"
    )
    _add_settings_options(neighbours, "encoder", "logs")

    train = sub.add_parser("train", help="train a model from what the store holds")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    train_rec = train_sub.add_parser(
        "recommender",
        help="train the learned collaborative model on every stored shopper history",
    )
    _add_settings_options(train_rec, "store", "encoder", "behaviour", "ranking", "startup", "logs")
    train_enc = train_sub.add_parser(
        "encoder",
        help="fine-tune the encoder (RECSTREAM_MODEL) on pairs of items that belong together; "
        "writes a model directory RECSTREAM_MODEL accepts",
    )
    train_enc.add_argument("--out", type=Path, required=True, help="new model directory")
    train_enc.add_argument(
        "--pairs", type=Path, default=None, help="pairs file: text_a, text_b or item_a, item_b"
    )
    train_enc.add_argument(
        "--items", type=Path, default=None, help="items file: item_id, title[, description, ...]"
    )
    train_enc.add_argument(
        "--same-category", type=int, default=0, help="at most N pairs of same-category items [0]"
    )
    train_enc.add_argument(
        "--abt-buy", type=Path, default=None, help="Abt-Buy directory: its training split's pairs"
    )
    train_enc.add_argument(
        "--interactions",
        type=Path,
        default=None,
        help="shopper interactions (with --items), or the Online Retail invoices (alone)",
    )
    train_enc.add_argument(
        "--co-purchase", type=int, default=0, help="at most N pairs of items bought together [0]"
    )
    train_enc.add_argument(
        "--before", default=None, help="only interactions before this ISO date (UTC)"
    )
    train_enc.add_argument("--epochs", type=int, default=1, help="[1]")
    train_enc.add_argument("--batch-size", type=int, default=32, help="pairs per step [32]")
    train_enc.add_argument("--learning-rate", type=float, default=5e-5, help="[5e-5]")
    train_enc.add_argument("--max-length", type=int, default=128, help="tokens per text [128]")
    train_enc.add_argument(
        "--holdout", type=float, default=0.1, help="share of the pairs held out [0.1]"
    )
    train_enc.add_argument("--seed", type=int, default=0, help="[0]")
    _add_settings_options(train_enc, "encoder", "logs")

    tune_cmd = sub.add_parser(
        "tune",
        help="choose the ranking weights and model settings on the shop's own history, store "
        "them for the consumers and train the model with them",
    )
    tune_cmd.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="the last share of the history's time span used as validation [0.1]",
    )
    tune_cmd.add_argument("--samples", type=int, default=200, help="weight vectors per grid point")
    tune_cmd.add_argument("--workers", type=int, default=None, help="processes [one per CPU]")
    _add_settings_options(
        tune_cmd, "store", "encoder", "behaviour", "ranking", "lists", "startup", "logs"
    )

    replay = sub.add_parser(
        "replay-dlq", help="send dead letters back to the topic they came from (after a fix)"
    )
    replay.add_argument("--topic", default=None, help="DLQ topic [the catalog DLQ]")
    replay.add_argument("--dry-run", action="store_true", help="publish nothing, report only")
    replay.add_argument("--reason", default=None, help="only dead letters with this reason code")
    replay.add_argument("--limit", type=int, default=None, help="replay at most this many")
    _add_settings_options(replay, "kafka", "startup", "logs")

    from stream.backfill.command import add_backfill_parser

    add_backfill_parser(sub, _add_settings_options)

    from stream.migration.command import add_migrate_parser

    add_migrate_parser(sub, _add_settings_options)

    if bench:
        from recstream_tools.bench.cli import add_bench_parser

        add_bench_parser(sub, _add_settings_options, _BENCH_HELP)
    else:  # the benchmarks' options load only when a benchmark is asked for
        sub.add_parser("bench", help=_BENCH_HELP, add_help=False)

    schemas = sub.add_parser("schemas", help="message schemas")
    schemas_sub = schemas.add_subparsers(dest="schemas_command", required=True)
    export = schemas_sub.add_parser(
        "export",
        help="write the JSON Schema of every message and asyncapi.yaml (AsyncAPI 3.0: the "
        "topics and their messages)",
    )
    export.add_argument("directory", type=Path, help="the directory to write (created if missing)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(bench=argv[:1] == ["bench"]).parse_args(argv)
    if args.command == "schemas":
        from schemas.export import export_schemas

        for path in export_schemas(args.directory):
            print(path)
        return 0
    if args.command == "broker":
        from stream.errors import Refused

        try:
            return _broker(args.port)
        except Refused as exc:  # no embedded broker here, or it did not start
            print(f"recstream: {exc}", file=sys.stderr)
            return 2
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(_invalid_settings(exc), file=sys.stderr)
        return 2
    from confluent_kafka import KafkaException

    from stream.errors import Refused
    from stream.logs import configure_logging
    from stream.startup import warn_misspelled
    from stream.store.base import StoreUnavailable

    configure_logging(settings.log_format, settings.log_level)
    warn_misspelled(os.environ)
    # the project's own start-up and connection errors: one line naming what to change, not
    # a traceback
    try:
        return _command(args, settings)
    except Refused as exc:
        print(f"recstream: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(
            f"recstream: the vector store does not answer ({exc}): check "
            "RECSTREAM_QDRANT_URL (or RECSTREAM_QDRANT_PATH)",
            file=sys.stderr,
        )
        return 1
    except KafkaException as exc:
        print(f"recstream: Kafka: {exc.args[0]}: check RECSTREAM_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 1


_USES_BROKER = frozenset({"run", "replay-dlq", "backfill", "migrate"})
_USES_STORE = frozenset({"run", "serve", "train", "tune", "migrate"})


def _before_start(settings: Settings, command: str) -> None:
    """Say what a service runs against, and wait for the servers a command needs (each
    command calls it first): raises :class:`stream.errors.Unreachable` when one does not
    answer."""
    from stream.startup import check_broker, check_store, log_start

    if command in ("run", "serve"):
        log_start(settings, command)
    if command in _USES_BROKER:
        check_broker(settings)
    if command in _USES_STORE:
        check_store(settings)


def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "demo":
        _embedded_broker_installed()
        from recstream_tools.demo import run_demo

        return run_demo(settings, items=args.items, show=args.show)
    if args.command == "bench":
        from recstream_tools.bench.cli import run_bench

        return run_bench(settings, args)
    if args.command == "eval" and args.eval_command == "neighbours":
        return _eval_neighbours(settings, args)
    if args.command == "eval":
        return _eval_recommendations(settings, args)
    if args.command == "train" and args.train_command == "encoder":
        return _train_encoder(settings, args)
    if args.command == "train":
        return _train_recommender(settings)
    if args.command == "tune":
        return _tune(settings, args)
    if args.command == "replay-dlq":
        return _replay_dlq(settings, args)
    if args.command == "backfill":
        from stream.backfill.command import run_backfill

        _before_start(settings, "backfill")
        return run_backfill(settings, args, _stop_on_signals())
    if args.command == "serve":
        return _serve(settings)
    if args.command == "migrate":
        from stream.migration.command import run_migrate

        _before_start(settings, "migrate")
        return run_migrate(settings, args)
    return _run(settings, args.which)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def _run(settings: Settings, which: str) -> int:
    """``recstream run WHICH``, or ``serve`` (the HTTP API without consumers)."""
    from encoders import EncoderError
    from stream.errors import Refused
    from stream.http.server import HttpUnavailable
    from stream.runner import run_consumers

    _before_start(settings, "serve" if which == "serve" else "run")
    stop = _stop_on_signals()
    try:
        return run_consumers(settings, which, stop)
    except (HttpUnavailable, Refused, EncoderError) as exc:
        print(f"recstream: {exc}", file=sys.stderr)
        return 2


def _serve(settings: Settings) -> int:
    """The HTTP API alone until SIGTERM/SIGINT, against the configured store's served
    generation (refused, exit 2, when its items were embedded by another model than the one it
    would encode queries with)."""
    if not settings.http_port:
        print("recstream: serve needs an HTTP port: set RECSTREAM_HTTP_PORT", file=sys.stderr)
        return 2
    return _run(settings, "serve")


def _eval_recommendations(settings: Settings, args: argparse.Namespace) -> int:
    from recstream_tools.evaluation.run import evaluate, format_table, parse_cutoff

    if (args.interactions is None) != (args.items is None):
        print("recstream: --interactions and --items go together", file=sys.stderr)
        return 2
    files = [args.interactions, args.items] if args.interactions else [args.data]
    missing = [f for f in files if not f.is_file()]
    if missing:
        print(f"recstream: no data file at {missing[0]}: check the path", file=sys.stderr)
        return 2
    try:
        cutoff = parse_cutoff(args.cutoff)
        if args.interactions:
            from recstream_tools.evaluation.interactions import load_dataset

            data = load_dataset(args.interactions, args.items)
        else:
            from recstream_tools.evaluation.online_retail import online_retail_dataset

            data = online_retail_dataset(args.data, max_rows=args.max_rows)
        result = evaluate(
            settings, data, cutoff, args.max_users, args.out, args.workers, args.samples
        )
    except ValueError as exc:  # a cutoff that is no date, or that leaves nobody to evaluate
        print(f"recstream: {exc}", file=sys.stderr)
        return 2
    print(format_table(result))
    print(f"results: {result['path']}")
    return 0


def _eval_neighbours(settings: Settings, args: argparse.Namespace) -> int:
    from recstream_tools.evaluation.neighbours import (
        DATA_SETS,
        evaluate_neighbours,
        format_markdown,
        missing_data,
    )
    from recstream_tools.evaluation.run import parse_cutoff

    try:
        cutoff = parse_cutoff(args.cutoff)
    except ValueError as exc:
        print(f"recstream: {exc}", file=sys.stderr)
        return 2
    try:
        until = parse_cutoff(args.until) if args.until is not None else None
    except ValueError as exc:
        print(f"recstream: --until: {exc}", file=sys.stderr)
        return 2
    if until is not None and until <= cutoff:
        print(
            f"recstream: --until {args.until} must come after --cutoff {args.cutoff}",
            file=sys.stderr,
        )
        return 2
    missing = missing_data(args.data)
    if len(missing) == DATA_SETS:  # nothing to evaluate: say so before loading a model
        for reason in missing:
            print(f"skipped {reason}")
        print(f"recstream: no neighbour evaluation data under {args.data}: nothing to do")
        return 0
    encoder = None
    if not args.lexical_only:
        from encoders import load_encoder

        encoder = load_encoder(settings)
    result, skipped = evaluate_neighbours(args.data, encoder, args.out, cutoff, until)
    for reason in skipped:
        print(f"skipped {reason}")
    if "paths" not in result:
        print(f"recstream: no neighbour evaluation data under {args.data}: nothing to do")
        return 0
    print(format_markdown(result), end="")
    print("results: " + ", ".join(result["paths"]))
    return 0


def _train_encoder(settings: Settings, args: argparse.Namespace) -> int:
    from recstream_tools.evaluation.run import parse_cutoff
    from recstream_tools.training.encoder import TrainingOptions
    from recstream_tools.training.run import Sources, TrainingRefused, train_encoder

    if args.pairs is None and args.abt_buy is None and not (args.same_category or args.co_purchase):
        print(
            "recstream: give pairs: --pairs, --same-category with --items, --co-purchase with "
            "--interactions, or --abt-buy",
            file=sys.stderr,
        )
        return 2
    for path in (args.pairs, args.items, args.abt_buy, args.interactions):
        if path is not None and not path.exists():
            print(f"recstream: no such file or directory: {path}", file=sys.stderr)
            return 2
    try:
        before = parse_cutoff(args.before) if args.before else None
    except ValueError as exc:
        print(f"recstream: --before: {exc}", file=sys.stderr)
        return 2
    sources = Sources(
        args.pairs,
        args.items,
        args.same_category,
        args.abt_buy,
        args.interactions,
        args.co_purchase,
        before,
    )
    options = TrainingOptions(
        args.epochs, args.batch_size, args.learning_rate, args.max_length, args.seed
    )
    try:
        result = train_encoder(settings, sources, args.out, options, args.holdout)
    except TrainingRefused as exc:
        print(f"recstream: {exc}", file=sys.stderr)
        return 2
    print(
        f"model written to {result['model_dir']} in {result['seconds']:.0f} s "
        f"({result['training']['steps']} steps); use it with RECSTREAM_MODEL={result['model_dir']}"
    )
    return 0


def _train_recommender(settings: Settings) -> int:
    from stream.generations import open_served
    from stream.ranking.learned import train_from_store

    _before_start(settings, "train")
    settings, store = open_served(settings)
    try:
        from encoders.hybrid import vector_layout
        from stream.collections import ensure_collections

        ensure_collections(store, *vector_layout(settings))
        training = train_from_store(settings, store)
    finally:
        store.close()
    m = training.model
    print(
        f"trained {m.kind} on {m.interactions} interactions of {m.shoppers} shoppers: "
        f"{len(m.rows)} item rows written in {training.seconds:.1f} s"
    )
    return 0


def _tune(settings: Settings, args: argparse.Namespace) -> int:
    import os

    from encoders.hybrid import vector_layout
    from recstream_tools.evaluation.tune import tune_store
    from stream.collections import ensure_collections
    from stream.generations import open_served

    _before_start(settings, "tune")
    settings, store = open_served(settings)
    try:
        ensure_collections(store, *vector_layout(settings))
        workers = args.workers or os.cpu_count() or 1
        tuning = tune_store(settings, store, args.validation_fraction, args.samples, workers)
    except ValueError as exc:  # too little history
        print(f"recstream: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(
        f"validation: {tuning.users} shoppers after {tuning.cutoff.isoformat()}, "
        f"{tuning.tried} settings tried in {tuning.seconds:.1f} s"
    )
    for name in ("hit_rate@10", "ndcg@10", "recall@20"):
        print(f"  {name:<12} before {tuning.before[name]:.4f}  after {tuning.after[name]:.4f}")
    for decision in tuning.decisions:
        print(f"  {decision.line()}")
    print("stored (consumers pick them up within RECSTREAM_RANK_RELOAD_S):")
    for key, value in tuning.values.items():
        print(f"  {key} = {value:g}")
    return 0


def _replay_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from stream.replay import ReplayFailed, format_report, replay_dead_letters

    _before_start(settings, "replay-dlq")
    topic = args.topic or settings.dlq_topic(settings.topic_items)
    try:
        report = replay_dead_letters(settings, topic, args.dry_run, args.reason, args.limit)
    except ValueError as exc:  # not a DLQ topic
        print(f"recstream: {exc}", file=sys.stderr)
        return 2
    except ReplayFailed as exc:
        print(f"recstream: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0


def _embedded_broker_installed() -> None:
    """The demo and ``recstream broker`` run the embedded broker, which the Docker image
    leaves out (its module and binary): raise :class:`stream.errors.Refused` saying so."""
    import importlib.util

    if importlib.util.find_spec("recstream_tools.broker") is None:
        from stream.errors import Refused

        raise Refused(
            "the embedded broker is not installed here (the Docker image has none): "
            "pip install 'recstream[demo]', or use a Kafka broker (RECSTREAM_KAFKA_BOOTSTRAP) "
            "with `recstream run`"
        )


def _broker(port: int) -> int:
    _embedded_broker_installed()
    from recstream_tools.broker import EmbeddedBroker

    stop = _stop_on_signals()
    with EmbeddedBroker(port=port) as broker:
        print(f"recstream broker: bootstrap {broker.bootstrap} (memory storage; Ctrl-C stops it)")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
