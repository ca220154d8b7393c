"""Settings that cannot be safe are refused at start-up, before anything runs: memory search on
a shared Qdrant server, a Qdrant API key sent over plain http to another machine, and secrets
given as command-line options (which other users read in ``ps``). Secrets come from the
environment or from a file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream import cli
from stream.settings import Settings

SECRET = "Hq4Wn8Tz2Lp6Vc"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without RECSTREAM_ variables."""
    for name in list(os.environ):
        if name.startswith("RECSTREAM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Settings]]:
    """``recstream run`` with the consumers (and logging set-up) replaced by a recorder."""
    calls: list[Settings] = []

    def fake_run(settings: Settings, which: str) -> int:
        calls.append(settings)
        return 0

    monkeypatch.setattr(cli, "_run", fake_run)
    monkeypatch.setattr("stream.logs.configure_logging", lambda *args: None)
    yield calls


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert cli.main(["run", "catalog", *argv]) == 2
    return capsys.readouterr().err


def test_memory_search_on_a_qdrant_server_is_refused(
    ran: list[Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    """``RECSTREAM_NEIGHBOUR_SEARCH=memory`` with ``RECSTREAM_QDRANT_URL``: exit 2 before
    anything starts, one line naming both ways out (store search, or the single-writer
    promise)."""
    err = _refused(["--qdrant-url=http://qdrant:6333", "--neighbour-search=memory"], capsys)
    assert ran == []
    [line] = [ln for ln in err.splitlines() if "RECSTREAM_NEIGHBOUR_SEARCH=memory" in ln]
    assert "RECSTREAM_SINGLE_WRITER=true" in line and "RECSTREAM_NEIGHBOUR_SEARCH=store" in line


def test_memory_search_on_a_qdrant_server_runs_when_promised_a_single_writer(
    ran: list[Settings],
) -> None:
    """The same settings with ``RECSTREAM_SINGLE_WRITER=true`` start; without a server (the
    embedded store, locked to one process) memory search needs no promise."""
    argv = ["run", "catalog", "--qdrant-url=http://qdrant:6333", "--neighbour-search=memory"]
    assert cli.main([*argv, "--single-writer=true"]) == 0
    assert cli.main(["run", "catalog", "--neighbour-search=memory"]) == 0
    assert [s.neighbour_search for s in ran] == ["memory", "memory"]


@pytest.mark.parametrize(
    "url", ["http://qdrant.internal:6333", "qdrant.internal:6333", "http://10.0.0.7:6333"]
)
def test_an_api_key_over_plain_http_is_refused(
    url: str,
    monkeypatch: pytest.MonkeyPatch,
    ran: list[Settings],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Qdrant API key with an http:// URL (or one without a scheme, which qdrant-client reads
    as http) to another host: exit 2, a message asking for https, and no piece of the key."""
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY", SECRET)
    err = _refused([f"--qdrant-url={url}"], capsys)
    assert ran == []
    assert "https://" in err and "RECSTREAM_QDRANT_URL" in err
    assert SECRET[:6] not in err and SECRET[-6:] not in err


@pytest.mark.parametrize(
    "url", ["https://qdrant.internal:6333", "http://localhost:6333", "http://127.0.0.1:6333"]
)
def test_an_api_key_over_https_or_to_this_machine_is_accepted(
    url: str, monkeypatch: pytest.MonkeyPatch, ran: list[Settings]
) -> None:
    """https anywhere, plain http only to localhost or 127.0.0.1."""
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY", SECRET)
    assert cli.main(["run", "catalog", f"--qdrant-url={url}"]) == 0
    [settings] = ran
    assert settings.qdrant_api_key is not None
    assert settings.qdrant_api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("name", ["qdrant_api_key", "kafka_sasl_password"])
def test_a_secret_as_an_option_is_refused_without_echoing_it(
    name: str, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``recstream run catalog --qdrant-api-key=...`` (a real process): exit 2, one line naming
    the variable and the file setting to use instead, and not the secret."""
    flag = "--" + name.replace("_", "-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSTREAM_")}
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", "catalog", f"{flag}={SECRET}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    variable = f"RECSTREAM_{name.upper()}"
    assert done.stderr.strip().splitlines() == [
        f"recstream run: {flag} is not accepted: other users can read a command line; "
        f"set {variable} or {variable}_FILE (a file holding it)"
    ]
    assert SECRET[:6] not in done.stdout + done.stderr


def test_secrets_are_no_options_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``run --help`` offers the file settings, not the secrets themselves."""
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--qdrant-api-key-file" in out and "--kafka-sasl-password-file" in out
    assert "--qdrant-api-key " not in out and "--kafka-sasl-password " not in out


def test_secrets_come_from_files(
    monkeypatch: pytest.MonkeyPatch, ran: list[Settings], tmp_path: Path
) -> None:
    """``RECSTREAM_QDRANT_API_KEY_FILE`` and ``RECSTREAM_KAFKA_SASL_PASSWORD_FILE`` name files
    holding the secrets (a final newline is not part of them), as container secrets are
    mounted."""
    key, password = tmp_path / "key", tmp_path / "password"
    key.write_text(SECRET + "\n")
    password.write_text(SECRET[::-1])
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY_FILE", str(key))
    monkeypatch.setenv("RECSTREAM_KAFKA_SASL_PASSWORD_FILE", str(password))
    argv = [
        "run",
        "catalog",
        "--qdrant-url=https://qdrant.internal:6333",
        "--kafka-security-protocol=SASL_SSL",
        "--kafka-sasl-mechanism=PLAIN",
        "--kafka-sasl-username=recstream",
    ]
    assert cli.main(argv) == 0
    [settings] = ran
    assert settings.qdrant_api_key is not None and settings.kafka_sasl_password is not None
    assert settings.qdrant_api_key.get_secret_value() == SECRET
    assert settings.kafka_sasl_password.get_secret_value() == SECRET[::-1]
    assert SECRET not in repr(settings)


def test_an_unreadable_secret_file_or_both_sources_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    ran: list[Settings],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A secret file that cannot be read, or a secret given both ways: exit 2 naming the
    variable, never the secret."""
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY_FILE", str(tmp_path / "missing"))
    err = _refused([], capsys)
    assert "RECSTREAM_QDRANT_API_KEY_FILE" in err and "missing" in err
    key = tmp_path / "key"
    key.write_text(SECRET)
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY_FILE", str(key))
    monkeypatch.setenv("RECSTREAM_QDRANT_API_KEY", SECRET)
    err = _refused([], capsys)
    assert "not both" in err and SECRET[:6] not in err
    assert ran == []
