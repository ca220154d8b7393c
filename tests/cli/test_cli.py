"""The ``recstream`` command line: every setting is an option, options beat the environment,
invalid settings stop with exit code 2 before any I/O, schemas export, and no secret is shown."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from schemas import MESSAGE_NAMES
from stream import cli
from stream.settings import SECRET_SETTINGS, Settings

SASL_PASSWORD = "Zq7Xw4pT9mKd2R"
QDRANT_API_KEY = "Vb3Ny8cLh5sJ6W"
SECRETS = {
    "RECSTREAM_KAFKA_SASL_PASSWORD": SASL_PASSWORD,
    "RECSTREAM_QDRANT_API_KEY": QDRANT_API_KEY,
}


def _shows_part_of(secret: str, text: str) -> bool:
    """Whether any 5 consecutive characters of ``secret`` appear in ``text``."""
    return any(secret[i : i + 5] in text for i in range(len(secret) - 4))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment without RECSTREAM_ variables."""
    for name in list(os.environ):
        if name.startswith("RECSTREAM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Settings, str]]]:
    """``recstream run`` with the consumers (and logging set-up) replaced by a recorder."""
    calls: list[tuple[Settings, str]] = []

    def fake_run(settings: Settings, which: str) -> int:
        calls.append((settings, which))
        return 0

    monkeypatch.setattr(cli, "_run", fake_run)
    monkeypatch.setattr("stream.logs.configure_logging", lambda *args: None)
    yield calls


@pytest.mark.parametrize("command", [["demo"], ["run", "catalog"]], ids=["demo", "run"])
@pytest.mark.parametrize("name", sorted(set(Settings.model_fields) - SECRET_SETTINGS))
def test_every_setting_is_an_option(command: list[str], name: str) -> None:
    """Each Settings field but the secrets (tests/cli/test_settings_guards.py) has a ``--flag``
    on demo and run whose value reaches that field."""
    args = cli.build_parser().parse_args([*command, _flag(name), "some-value"])
    assert getattr(args, f"setting_{name}") == "some-value"


def test_an_option_overrides_the_environment(
    monkeypatch: pytest.MonkeyPatch, ran: list[tuple[Settings, str]]
) -> None:
    """A value given as an option wins over the same setting in the environment."""
    monkeypatch.setenv("RECSTREAM_KAFKA_BOOTSTRAP", "from-env:9092")
    monkeypatch.setenv("RECSTREAM_NEIGHBOURS_K", "7")
    assert cli.main(["run", "catalog", "--kafka-bootstrap", "from-flag:9092"]) == 0
    [(settings, which)] = ran
    assert which == "catalog"
    assert settings.kafka_bootstrap == "from-flag:9092"
    assert settings.neighbours_k == 7, "a setting without an option still comes from the env"


def test_without_options_or_environment_the_defaults_apply(
    ran: list[tuple[Settings, str]],
) -> None:
    """No option and no variable: the documented defaults."""
    assert cli.main(["run", "catalog"]) == 0
    [(settings, _)] = ran
    assert settings == Settings()


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--device", "gpu7"], ["device", "RECSTREAM_DEVICE"]),
        (["--neighbours-k", "0"], ["neighbours_k", "RECSTREAM_NEIGHBOURS_K"]),
        (["--batch-max-items", "many"], ["batch_max_items", "--batch-max-items"]),
        (["--log-format", "xml"], ["log_format", "RECSTREAM_LOG_FORMAT"]),
        (["--kafka-security-protocol", "SASL_SSL"], ["RECSTREAM_KAFKA_SASL_PASSWORD"]),
    ],
    ids=["device", "below-minimum", "not-a-number", "not-a-choice", "cross-field"],
)
def test_an_invalid_setting_exits_2_naming_it(
    argv: list[str],
    names: list[str],
    ran: list[tuple[Settings, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An invalid value stops with exit code 2 before the consumers start, and the message
    names the setting to change."""
    assert cli.main(["run", "catalog", *argv]) == 2
    assert ran == [], "nothing may start with invalid settings"
    err = capsys.readouterr().err
    assert "invalid settings" in err
    for name in names:
        assert name in err


def test_an_invalid_environment_variable_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    ran: list[tuple[Settings, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bad value in the environment is reported like a bad option."""
    monkeypatch.setenv("RECSTREAM_DEVICE", "tpu")
    assert cli.main(["run", "catalog"]) == 2
    assert ran == []
    assert "RECSTREAM_DEVICE" in capsys.readouterr().err


@pytest.mark.parametrize("variable", sorted(SECRETS))
def test_the_invalid_settings_message_never_shows_a_secret(
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    ran: list[tuple[Settings, str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A cross-field error is reported without echoing the settings given, so not even a
    piece of the SASL password or the Qdrant API key reaches the terminal."""
    monkeypatch.setenv(variable, SECRETS[variable])
    assert cli.main(["run", "catalog", "--kafka-max-poll-interval-ms", "1000"]) == 2
    out, err = capsys.readouterr()
    assert "kafka_max_poll_interval_ms" in err
    assert not _shows_part_of(SECRETS[variable], out + err)


def test_an_unknown_run_target_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse rejects an unknown consumer with exit code 2 before anything starts."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "everything"])
    assert exc.value.code == 2
    assert "everything" in capsys.readouterr().err


def test_schemas_export_writes_every_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``schemas export DIR`` writes one parseable JSON Schema per message and the AsyncAPI
    document of the topics, and lists them."""
    target = tmp_path / "out" / "schemas"
    assert cli.main(["schemas", "export", str(target)]) == 0
    written = sorted(target.glob("*.schema.json"))
    assert [p.name for p in written] == sorted(f"{n}.schema.json" for n in MESSAGE_NAMES)
    for path in written:
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert schema["title"]
    asyncapi = target / "asyncapi.yaml"
    assert yaml.safe_load(asyncapi.read_text(encoding="utf-8"))["asyncapi"] == "3.0.0"
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(p) for p in [*written, asyncapi])


@pytest.mark.parametrize(
    "argv", [["--help"], ["demo", "--help"], ["run", "--help"]], ids=["top", "demo", "run"]
)
def test_help_never_shows_a_secret(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--help`` shows defaults, never the secrets set in the environment."""
    for variable, secret in SECRETS.items():
        monkeypatch.setenv(variable, secret)
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 0
    out, err = capsys.readouterr()
    assert "usage: recstream" in out
    for secret in SECRETS.values():
        assert not _shows_part_of(secret, out + err)


def test_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    """``run --help`` documents an option for every setting but the secrets."""
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    out = capsys.readouterr().out
    for name in set(Settings.model_fields) - SECRET_SETTINGS:
        assert _flag(name) in out


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "catalog", f"--qdrant-api-ke={QDRANT_API_KEY}"],  # ambiguous prefix
        ["run", "catalog", f"--qdrant-api-keyy={QDRANT_API_KEY}"],  # unknown, with =
        ["run", "catalog", "--qdrant-api-keyy", QDRANT_API_KEY],  # unknown, then the value
        ["run", "--qdrant-api-keyy", QDRANT_API_KEY],  # the value taken for the command
        ["serve", f"--kafka-sasl-pass={SASL_PASSWORD}"],
    ],
)
def test_a_mistyped_secret_option_is_refused_without_showing_it(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse quotes what it could not place; a secret typed after a misspelt option must not
    be printed: exit 2, the option named, the value not shown."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert "error:" in err
    for secret in SECRETS.values():
        assert not _shows_part_of(secret, out + err), err
