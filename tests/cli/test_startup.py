"""What a service says and checks at start-up, seen from outside: a real ``recstream`` process
against ports nothing listens on. A misspelt variable is named with the setting it resembles,
one log line says what the process runs against, and an unreachable broker or Qdrant server
ends in one line naming the setting to check and a non-zero exit code, not a traceback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from stream.settings import Settings
from stream.startup import misspelled_variables, store_location

ROOT = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _recstream(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _log_events(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def _plain_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line and not line.startswith("{")]


def test_a_misspelt_variable_is_named_with_the_closest_setting() -> None:
    """RECSTREAM_QDRANT_URI is reported with RECSTREAM_QDRANT_URL; real settings and the test
    suite's own variables are not reported; a name close to nothing gets no suggestion."""
    found = misspelled_variables(
        {
            "RECSTREAM_QDRANT_URI": "http://qdrant:6333",
            "RECSTREAM_KAFKA_BOOTSTRAP": "kafka:9092",
            "RECSTREAM_TEST_BOOTSTRAP": "127.0.0.1:9092",
            "RECSTREAM_NEIGHBORS_K": "5",
            "RECSTREAM_XYZZY": "1",
            "PATH": "/usr/bin",
        }
    )
    assert found == [
        ("RECSTREAM_NEIGHBORS_K", "RECSTREAM_NEIGHBOURS_K"),
        ("RECSTREAM_QDRANT_URI", "RECSTREAM_QDRANT_URL"),
        ("RECSTREAM_XYZZY", None),
    ]


def test_the_store_location_never_shows_credentials() -> None:
    """A Qdrant URL with a user and password in it is shown without them (and without a
    query); the embedded store is shown by its path."""
    url = "https://admin:Hunter2Secret@qdrant.example:6333/base?api-key=Zq7Xw4pT9mKd2R"
    shown = store_location(Settings(qdrant_url=url))
    assert shown == "https://qdrant.example:6333/base"
    assert store_location(Settings(qdrant_path="/data/q")) == "embedded:/data/q"


def test_an_unreachable_broker_ends_in_one_line_naming_the_setting(tmp_path: Path) -> None:
    """``recstream run`` against a closed port: a warning names the misspelt variable and its
    closest setting, one start-up line gives broker, store, model, device and search mode, and
    the process exits 2 with one plain line naming RECSTREAM_KAFKA_BOOTSTRAP, no traceback."""
    bootstrap = f"127.0.0.1:{_closed_port()}"
    done = _recstream(
        ["run", "catalog", "--startup-timeout-s", "2", "--http-port", "0"],
        {
            "RECSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "RECSTREAM_QDRANT_URI": "http://qdrant:6333",
            "RECSTREAM_QDRANT_PATH": str(tmp_path / "store"),
        },
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    events = _log_events(done.stderr)
    [unknown] = [e for e in events if e["event"] == "settings.unknown_variable"]
    assert unknown["variable"] == "RECSTREAM_QDRANT_URI"
    assert unknown["did_you_mean"] == "RECSTREAM_QDRANT_URL"
    [start] = [e for e in events if e["event"] == "recstream.starting"]
    assert start["broker"] == bootstrap
    assert start["store"] == f"embedded:{tmp_path / 'store'}"
    assert start["search"] == "memory"
    assert start["model"] == Settings().model
    assert start["device"].startswith("auto (")
    [line] = _plain_lines(done.stderr)
    assert line.startswith("recstream: the Kafka broker at " + bootstrap)
    assert line.endswith("check RECSTREAM_KAFKA_BOOTSTRAP")


def test_a_qdrant_url_on_a_closed_port_ends_in_one_line_naming_the_setting(
    tmp_path: Path,
) -> None:
    """``recstream serve`` with RECSTREAM_QDRANT_URL on a closed port exits 2 with one plain
    line naming RECSTREAM_QDRANT_URL, no traceback."""
    url = f"http://127.0.0.1:{_closed_port()}"
    done = _recstream(
        ["serve", "--startup-timeout-s", "1", "--http-port", str(_closed_port())],
        {"RECSTREAM_QDRANT_URL": url},
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    [line] = _plain_lines(done.stderr)
    assert line.startswith(f"recstream: the Qdrant server at {url} did not answer")
    assert line.endswith("check RECSTREAM_QDRANT_URL")
    [start] = [e for e in _log_events(done.stderr) if e["event"] == "recstream.starting"]
    assert start["store"] == url and start["search"] == "store"


_WITHOUT_EDITABLE_INSTALL = """
import sys
# the development install maps the packages to the checkout: drop it, so that the copy is used
sys.meta_path[:] = [
    f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", ""))
]
sys.path[:] = [sys.argv[1], *(p for p in sys.path if "__editable__" not in p)]
from stream.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_without_the_embedded_broker_demo_and_broker_say_what_to_install(
    tmp_path: Path,
) -> None:
    """Laid out as in the Docker image (no recstream_tools/broker.py, see .dockerignore),
    ``recstream broker`` and ``recstream demo`` end with one line saying what to install or
    use instead, exit code 2, no traceback."""
    image = tmp_path / "app"
    for package in ("stream", "encoders", "schemas", "recstream_tools"):
        shutil.copytree(
            ROOT / package,
            image / package,
            ignore=shutil.ignore_patterns("__pycache__", "broker.py"),
        )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
    for argv in (["broker", "--port", str(_closed_port())], ["demo", "--items", "10"]):
        with subprocess.Popen(
            [sys.executable, "-c", _WITHOUT_EDITABLE_INSTALL, str(image), *argv],
            cwd=tmp_path,
            env=clean,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as process:
            try:
                _, stderr = process.communicate(timeout=120)
            finally:  # a broker started after all must not outlive the test
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
        assert process.returncode == 2, stderr
        assert "Traceback" not in stderr
        [line] = _plain_lines(stderr)
        assert "pip install 'recstream[demo]'" in line, line
