"""``recstream serve`` (the HTTP API alone) as a real process, and the HTTP settings' checks at
start-up of ``serve`` and ``run``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api import free_port, taken_port
from kit import wait_for

from stream import cli
from stream.settings import SECRET_SETTINGS, Settings

SASL_PASSWORD = "Tg6Mv1Qa8Ne3Kw"
QDRANT_API_KEY = "Rd2Hy7Bc5Xu9Lp"


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
    env.update({f"RECSTREAM_{k.upper()}": v for k, v in settings.items()})
    return env


def test_serve_answers_over_http_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """A ``recstream serve`` process on an empty embedded store is healthy and ready (it has
    no consumers), answers queries (an unknown item: 404) and metrics, and on SIGTERM stops
    and exits 0; neither its answers nor its log show the secrets it was given."""
    port = free_port()
    env = _env(
        qdrant_path=str(tmp_path / "qdrant"),
        http_host="127.0.0.1",
        http_port=str(port),
        kafka_sasl_password=SASL_PASSWORD,
        qdrant_api_key=QDRANT_API_KEY,
        log_format="json",
    )
    command = [sys.executable, "-m", "stream.cli", "serve"]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    bodies = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def up() -> bool:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(up, 120, "recstream serve to listen")
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            missing = client.get("/v1/items/sku-1/similar")
            assert missing.status_code == 404 and missing.json()["error"] == "not_found"
            metrics = client.get("/metrics")
            assert metrics.status_code == 200
            bodies = [ready.text, missing.text, metrics.text]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stderr.read() if proc.stderr else ""
    assert '"http.started"' in log and '"http.stopped"' in log
    for text in [*bodies, log]:
        assert SASL_PASSWORD not in text and QDRANT_API_KEY not in text


def test_serve_without_a_port_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """``serve`` with RECSTREAM_HTTP_PORT 0 (no HTTP) stops at once, exit 2, naming it."""
    assert cli.main(["serve", "--http-port", "0"]) == 2
    assert "RECSTREAM_HTTP_PORT" in capsys.readouterr().err


@pytest.mark.integration
def test_run_with_a_taken_port_exits_2_naming_the_setting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    bootstrap: str,
) -> None:
    """``run`` whose HTTP port is taken exits 2 with one line naming the setting to change
    (no traceback), before it opens the store (the broker answers: start-up waits for it
    first)."""
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)
    monkeypatch.setattr("stream.logs.configure_logging", lambda *args: None)
    path = tmp_path / "never"
    with taken_port() as port:
        argv = ["run", "behaviour", "--http-host", "127.0.0.1", "--http-port", str(port)]
        argv += ["--kafka-bootstrap", bootstrap]
        assert cli.main([*argv, "--qdrant-path", str(path)]) == 2
    err = capsys.readouterr().err
    assert "RECSTREAM_HTTP_PORT" in err and "Traceback" not in err
    assert not path.exists()


@pytest.mark.parametrize("name", ["http_host", "http_port"])
def test_the_http_settings_are_options_of_serve(name: str) -> None:
    """``serve`` takes every setting but the secrets as an option, the HTTP ones included."""
    flag = "--" + name.replace("_", "-")
    args = cli.build_parser().parse_args(["serve", flag, "1234"])
    assert getattr(args, f"setting_{name}") == "1234"
    assert set(Settings.model_fields) - SECRET_SETTINGS <= {
        k.removeprefix("setting_") for k in vars(args) if k.startswith("setting_")
    }
