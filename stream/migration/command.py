"""The ``recstream migrate`` command line: build, verify and switch to another model's
generation, or roll back to the one served before."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stream.settings import Settings

HELP = "embed the catalogue with another model beside the served one, then switch to it"
_EPILOG = """\
The consumers keep serving the current generation while the new one is built. --model (and
--lexical-weight, --lexical-dim) say the new vectors' settings, as for `recstream run`. After
the build is verified (every item and shopper copied, the model recorded) the store's pointer
is switched: running consumers follow it within RECSTREAM_GENERATION_CHECK_S, apply again what
changed during the build, and publish every item's list made with the new model.

  recstream migrate --model ./models/tuned
  recstream migrate --rollback      # serve the generation before again
  recstream migrate --status

With the embedded store (no RECSTREAM_QDRANT_URL), only one process can open it: stop
`recstream run` first, or use a Qdrant server to migrate while the consumers run.
Exit codes: 0 done, 1 failed (the served generation is untouched), 2 cannot work as asked.
"""


def add_migrate_parser(sub: Any, add_settings: Callable[..., None]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        "migrate",
        help=HELP,
        description=HELP + ".",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--rollback", action="store_true", help="serve the generation before")
    what.add_argument("--status", action="store_true", help="say what is served, change nothing")
    what.add_argument(
        "--drop",
        type=int,
        default=None,
        metavar="N",
        help="remove generation N's collections (not the served one's; no rollback to it after)",
    )
    parser.add_argument(
        "--pairs",
        type=Path,
        default=None,
        metavar="CSV",
        help="held-out pairs of item ids that should be near each other (two columns, a "
        "header): switch only if the new vectors find them at least as often (recall@1, @10)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="switch even if the pairs are found less often; roll back even if the broker "
        "lost events the earlier generation has not read",
    )
    parser.add_argument(
        "--via",
        default=None,
        metavar="URL",
        help="run it inside the `recstream run` process serving this API (started with "
        "RECSTREAM_HTTP_ADMIN=true): the embedded store's way to migrate without a stop",
    )
    parser.add_argument(
        "--from-model",
        default=None,
        metavar="DIR",
        help="for a store never migrated: the model directory its vectors were made by "
        "[the packaged model]",
    )
    add_settings(parser)
    return parser


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Run the command; the exit code (see the epilog)."""
    from encoders import EncoderError
    from stream.errors import Refused
    from stream.store import open_store

    if args.via is not None:
        return _via(settings, args)
    try:
        store = open_store(settings)
    except Refused as exc:
        return _fail(str(exc))
    try:
        if args.status:
            return _status(settings, store)
        if args.rollback:
            return _rollback(settings, store, args)
        if args.drop is not None:
            from stream.migration.switch import drop

            names = drop(store, args.drop)
            print(f"generation {args.drop} dropped: {', '.join(names)}")
            return 0
        return _migrate(settings, store, args)
    except (Refused, EncoderError) as exc:  # EncoderError: the new model cannot load
        return _fail(str(exc))
    finally:
        store.close()


def _status(settings: Settings, store: Any) -> int:
    from stream.generations import read_pointer

    found = read_pointer(store)
    if found is None:
        print("generation 0 (never migrated): the configured model's")
        return 0
    print(
        f"generation {found.number}: {found.model} (lexical weight {found.lexical_weight:g}, "
        f"{found.lexical_dim} dimensions), switched {_when(found.switched_at)}; "
        f"before it: {'none' if found.previous is None else found.previous}"
    )
    return 0


def _migrate(settings: Settings, store: Any, args: argparse.Namespace) -> int:
    from stream.migration.switch import NotVerified, migrate, read_pairs, recall_text

    pairs = read_pairs(args.pairs) if args.pairs is not None else None
    print(f"building a generation with {settings.model} ...", flush=True)
    try:
        done = migrate(settings, store, args.from_model, _progress(), pairs, args.force)
    except NotVerified as exc:
        print()
        return _fail(str(exc), 1)
    print()
    if done.recall is not None:
        print(f"held-out pairs, served -> new: {recall_text(done.recall)}")
    built = done.built
    print(
        f"generation {done.generation.number} served from {_when(done.generation.switched_at)}: "
        f"{built.items} items {_made(built.copied)} and {built.shoppers} shoppers' profiles "
        f"computed again in {built.seconds:.1f} s; running consumers follow within "
        f"{settings.generation_check_s:g} s and publish every list again. Roll back: "
        "recstream migrate --rollback"
    )
    return 0


def _rollback(settings: Settings, store: Any, args: argparse.Namespace) -> int:
    from stream.migration.switch import rollback

    back, owed = rollback(settings, store, args.force)
    print(
        f"generation {back.number} served again ({back.model}); its consumers apply what "
        f"happened since they stopped and publish the {owed} items' lists again"
    )
    return 0


def _via(settings: Settings, args: argparse.Namespace) -> int:
    """Ask a running process's admin API to migrate (or roll back), and follow it."""
    base = args.via.rstrip("/")
    if args.rollback:
        answer = _call(f"{base}/v1/admin/rollback?force={str(args.force).lower()}", {})
        if "generation" not in answer:
            return _fail(str(answer.get("message") or answer))
        print(f"generation {answer['generation']} served again ({answer['model']})")
        return 0
    if args.status or args.pairs is not None or args.drop is not None:
        return _fail(
            "--via runs a migration or a rollback; --status, --pairs and --drop need the store"
        )
    body = {
        "model": settings.model,
        "lexical_weight": settings.lexical_weight,
        "lexical_dim": settings.lexical_dim,
    }
    state = _call(f"{base}/v1/admin/migrate", body)
    while state.get("state") == "building":
        done = ", ".join(f"{k} {v}" for k, v in state.get("progress", {}).items())
        print(f"\r  building with {state.get('model')}: {done}", end="", flush=True)
        time.sleep(1.0)
        state = _call(f"{base}/v1/admin/migration")
    print()
    if state.get("state") != "switched":
        return _fail(str(state.get("message") or state.get("error") or state), 1)
    print(
        f"generation {state['generation']} served: {state['items']} items "
        f"{_made(bool(state.get('copied')))} and {state['shoppers']} shoppers' profiles computed "
        f"again in {state['seconds']} s"
    )
    return 0


def _made(copied: bool) -> str:
    """How a generation's items got their vectors."""
    return "copied to the sparse layout as they were" if copied else "embedded again"


def _call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON answer of a GET (or, with ``body``, a POST), error answers included."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            parsed: dict[str, Any] = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        parsed = json.loads(exc.read() or b"{}")
        parsed.setdefault("message", f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        parsed = {"message": f"cannot reach {url}: {getattr(exc, 'reason', exc)}"}
    return parsed


def _progress() -> Callable[[str, int], None]:
    def show(stage: str, n: int) -> None:
        print(f"\r  {stage}: {n}", end="", flush=True)

    return show


def _when(at: float | None) -> str:
    return "never" if at is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _fail(text: str, code: int = 2) -> int:
    print(f"recstream: {text}", file=sys.stderr)
    return code
