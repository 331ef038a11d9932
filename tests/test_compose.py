"""The scale-out packaging: compose.yaml's topology, read as docker-compose reads it.

`make compose-check` (deploy/compose-check, run by CI) builds and runs it for real; these check in
a second what a change could quietly break: one worker per queue, one beat, two daphne on their
own ports with make run's flags, DEBUG off and everything on 127.0.0.1, and the host's CA bundle
kept out of git and out of the final image.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from daphne.cli import CommandLineInterface

ROOT = Path(__file__).resolve().parent.parent
QUEUES = {"trading", "backtests", "default"}
# compose's ${NAME:-default} and ${NAME:?message}, resolved as with nothing set.
_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*)|:\?[^}]*)?\}")


def _interpolate(value: Any) -> Any:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: match.group(2) or f"<{match.group(1)}>", value)
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    return value


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return _interpolate(compose["services"])


def _app_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in services.items() if s["image"].startswith("local/tradingbot:")}


def _argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def _option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_it_runs_one_worker_per_queue_and_one_beat(services):
    # given
    argvs = [_argv(s) for s in _app_services(services).values()]

    # when
    workers = [argv for argv in argvs if argv[:1] == ["celery"] and "worker" in argv]
    beats = [argv for argv in argvs if argv[:1] == ["celery"] and "beat" in argv]

    # then
    assert sorted(_option(argv, "--queues") for argv in workers) == sorted(QUEUES)
    assert len({_option(argv, "--hostname") for argv in workers}) == len(workers)
    assert len(beats) == 1


def test_it_runs_two_daphne_on_their_own_loopback_ports_with_make_runs_flags(services):
    # given
    procfile = (ROOT / "Procfile").read_text()
    web_line = next(line for line in procfile.splitlines() if line.startswith("web:"))
    made_run = _server_argv(shlex.split(web_line.removeprefix("web:")))

    # when
    daphnes = [
        _server_argv(_argv(s)) for s in _app_services(services).values() if _is_web(_argv(s))
    ]

    # then: the same flags, but no proxy in front to believe
    assert len(daphnes) == 2
    assert len({_option(argv, "--port") for argv in daphnes}) == 2
    for argv in daphnes:
        assert _option(argv, "--bind") == "127.0.0.1"
        assert "--proxy-headers" not in argv
        assert _flags(argv) == {**_flags(made_run), "proxy_headers": False}


def _is_web(argv: list[str]) -> bool:
    return "daphne" in argv[0] or "tradingbot.live.daphne_server" in argv


def _server_argv(argv: list[str]) -> list[str]:
    """daphne's arguments: what follows `daphne` or `python -m tradingbot.live.daphne_server`."""
    if "-m" in argv:
        return argv[argv.index("-m") + 1 :]
    return argv


def _flags(argv: list[str]) -> dict[str, Any]:
    """daphne's own reading of its command line, but where it binds (which differs on purpose)."""
    words = list(argv[1:])
    for name in ("--bind", "--port"):
        if name in words:
            del words[words.index(name) : words.index(name) + 2]
    options = vars(CommandLineInterface().parser.parse_args(words))
    return {key: value for key, value in options.items() if key not in ("host", "port")}


def test_every_app_process_has_debug_off_and_secrets_from_the_environment(services):
    for name, service in _app_services(services).items():
        environment = service["environment"]
        assert environment["DEBUG"] == "false", name
        assert environment["ALLOWED_HOSTS"] == "127.0.0.1,localhost", name
        assert environment["SECRET_KEY"] == "<SECRET_KEY>", name
        assert environment["FIELD_ENCRYPTION_KEY"] == "<FIELD_ENCRYPTION_KEY>", name
        assert environment["DATABASE_URL"].startswith("postgres://"), name
        assert "@127.0.0.1:55432/" in environment["DATABASE_URL"], name
        assert environment["REDIS_URL"].endswith("@127.0.0.1:56379/0"), name


def test_every_service_is_on_the_host_network_and_long_running_ones_have_an_init(services):
    for name, service in services.items():
        assert service["network_mode"] == "host", name
        long_running = service.get("restart") != "no"
        assert service.get("init") is long_running, name
    assert services["postgres"]["environment"]["POSTGRES_HOST"] == "127.0.0.1"
    assert services["redis"]["environment"]["REDIS_HOST"] == "127.0.0.1"


def test_the_app_waits_for_the_migration_which_waits_for_its_databases(services):
    for name, service in _app_services(services).items():
        if name != "migrate":
            assert service["depends_on"] == {
                "migrate": {"condition": "service_completed_successfully"}
            }, name
    assert set(services["migrate"]["depends_on"]) == {"postgres", "redis"}


def test_the_host_ca_bundle_stays_out_of_git_and_out_of_the_final_image():
    # given
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[-1]

    # then
    assert "/ca.crt" in (ROOT / ".gitignore").read_text().splitlines()
    assert "ca.crt" in dockerfile
    assert "ca.crt" not in final_stage
    assert "host-ca" not in final_stage
    assert re.search(r"^USER (?!root)", final_stage, flags=re.MULTILINE)


def test_the_build_context_leaves_out_local_state():
    ignored = set((ROOT / ".dockerignore").read_text().splitlines())
    assert {".git", ".venv", "var", "tests"} <= ignored
