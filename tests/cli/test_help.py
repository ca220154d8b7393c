"""``recstream --help`` and each subcommand's: every option explains itself, the texts match
what the code does, and a command lists only the settings it uses."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from encoders.bert import CPU_MAX_TOKENS, GPU_MAX_TOKENS
from stream import cli
from stream.settings import SECRET_SETTINGS, Settings


def _parsers(
    parser: argparse.ArgumentParser, path: str = "recstream"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser and subparser, with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main([*argv, "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def test_every_option_of_every_command_has_a_help_line() -> None:
    """No option, setting or not, is listed without an explanation (secrets are not options)."""
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, parser in _parsers(cli.build_parser())
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        and not isinstance(action, argparse._SubParsersAction)
        and not (action.help or "").removeprefix("[default: ").split("] ", 1)[-1].strip()
    ]
    assert missing == []


def test_every_setting_belongs_to_exactly_one_group() -> None:
    """The groups commands pick their options from cover each setting once."""
    for name in Settings.model_fields:
        groups = [g for g in cli.SETTING_GROUPS if name in cli.settings_of(g)]
        assert len(groups) == 1, (name, groups)


def test_replay_dlq_lists_only_the_settings_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    """replay-dlq talks to Kafka only: no encoder, batching, ranking or HTTP options."""
    text = _help(["replay-dlq"], capsys)
    assert "--kafka-bootstrap" in text
    assert "--topic-items" in text
    for absent in (
        "--encoder-max-tokens",
        "--batch-max-items",
        "--rank-weight-price",
        "--http-port",
    ):
        assert absent not in text


def test_eval_lists_the_model_and_ranking_but_not_kafka(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """eval recommendations runs the ranking code on files: no broker, store or HTTP options."""
    text = _help(["eval", "recommendations"], capsys)
    assert "--rank-weight-learned" in text
    assert "--model" in text
    for absent in ("--kafka-bootstrap", "--qdrant-url", "--http-port", "--batch-max-wait-ms"):
        assert absent not in text


def test_run_lists_every_setting_but_the_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    """The consumers use every setting: each is an option of ``run`` (secrets excepted)."""
    text = _help(["run", "all"], capsys)
    for name in Settings.model_fields:
        if name not in SECRET_SETTINGS:
            assert _flag(name) in text, name


def test_the_encoder_help_states_today_s_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """--encoder-max-tokens gives the token budgets the encoder uses, --encoder-quantize what
    auto chooses today (int8 on ONNX Runtime)."""
    described = Settings.model_fields["encoder_max_tokens"].description or ""
    assert f"{CPU_MAX_TOKENS:,}" in described and f"{GPU_MAX_TOKENS:,}" in described
    quantize = Settings.model_fields["encoder_quantize"].description or ""
    assert "int8 on ONNX Runtime" in quantize
    text = " ".join(_help(["run", "all"], capsys).split())
    assert f"{GPU_MAX_TOKENS:,} on CUDA" in text
