"""Shared fixtures. Tests talk to the real database (SQLite file or PostgreSQL) and real Redis.

Without ``REDIS_URL`` the session starts the embedded Redis server (the same binary ``make run``
uses) on the socket that settings point at, unless one already serves it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.factories import DEFAULT_PASSWORD, ExchangeAccountFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent
_embedded: subprocess.Popen[bytes] | None = None


# Fixtures that start a real process: a test that uses one is in the "process" tier.
PROCESS_FIXTURES = frozenset(
    (
        "celery_worker_process",
        "worker_processes",
        "bot_workers",
        "daphne_server",
        "browser",
        "stack",
    )
)
PROCESS_MARKERS = frozenset(("browser", "stack"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="the quick tier: leave out every test that starts a real process (marked "
        "'process'), and fail a test that starts one unmarked",
    )


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects: ``-m process`` sees these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``process`` every test that starts a real process (a marker that says so, or a
    fixture that does); with ``--fast``, leave them out."""
    quick = []
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        markers = {mark.name for mark in item.iter_markers()}
        if fixtures & PROCESS_FIXTURES or markers & PROCESS_MARKERS:
            item.add_marker(pytest.mark.process)
            markers.add("process")
        if "process" not in markers:
            quick.append(item)
    if config.getoption("--fast"):
        config.hook.pytest_deselected(items=[item for item in items if item not in quick])
        items[:] = quick


@pytest.fixture(autouse=True)
def _no_process_in_the_quick_tier(request: pytest.FixtureRequest, monkeypatch: Any) -> None:
    """Under ``--fast`` a test that starts a process fails, naming the marker it lacks: the
    quick tier stays quick and honest."""
    if not request.config.getoption("--fast"):
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("this test starts a process: mark it @pytest.mark.process")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def _isolate_this_xdist_worker() -> None:
    """Under pytest-xdist (``make test-fast`` runs a worker per core) each worker has a test
    database of its own (pytest-django) but shares Redis: its login-throttle keys, cache keys and
    channel-layer groups get a prefix of its own, so that no count or event of one worker's
    tests reaches another's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return
    from accounts import throttling
    from bots.services import signal_access
    from tradingbot import metrics

    throttling.KEY_PREFIX = f"{throttling.KEY_PREFIX}{worker}:"
    signal_access.RATE_KEY_PREFIX = f"{signal_access.RATE_KEY_PREFIX}{worker}:"
    metrics.KEY_PREFIX = f"{metrics.KEY_PREFIX}-{worker}"
    settings.CACHES["default"]["KEY_PREFIX"] += f"-{worker}"
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] += f"-{worker}"


def pytest_configure(config: pytest.Config) -> None:
    global _embedded
    _isolate_this_xdist_worker()
    if settings.EMBEDDED_REDIS:
        from tradingbot import embedded_redis

        _embedded = embedded_redis.start_background(Path(settings.VAR_DIR) / "redis.sock")


def pytest_unconfigure(config: pytest.Config) -> None:
    if _embedded is not None:
        _embedded.terminate()
        _embedded.wait(timeout=10)


def pytest_report_header(config: pytest.Config) -> list[str]:
    db = settings.DATABASES["default"]
    return [
        f"database: {db['ENGINE'].rsplit('.', 1)[-1]} ({db.get('HOST') or db['NAME']})",
        f"redis: {'embedded ' if settings.EMBEDDED_REDIS else ''}{settings.REDIS_URL}",
    ]


@pytest.fixture(scope="session", autouse=True)
def _optuna_connections_closed(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Optuna's storage keeps a pool of its own on the test database (PostgreSQL): closed before
    pytest-django drops that database."""
    yield
    from backtests.services import studies

    studies.close()


@pytest.fixture(autouse=True)
def _clean_redis_state() -> None:
    """Forget login failures and signal rate windows between tests (keys of this suite only,
    never a FLUSHDB)."""
    from accounts.throttling import KEY_PREFIX
    from bots.services import signal_access
    from tradingbot.redis import get_redis

    client = get_redis()
    for prefix in (KEY_PREFIX, signal_access.RATE_KEY_PREFIX):
        # One SCAN round trip, not one per 10 keys (Redis's default COUNT): ~0.4 ms, not ~7.
        for key in client.scan_iter(f"{prefix}*", count=10_000):
            client.delete(key)


@pytest.fixture(autouse=True)
def _no_outage_carried_over() -> None:
    """The ccxt adapter remembers a transient outage per process (to log it once): each test
    starts without one."""
    from markets.exchanges import ccxt_exchange

    ccxt_exchange._outages.clear()


@pytest.fixture(autouse=True)
def _no_candles_cached_by_an_earlier_test() -> None:
    """Ticks cache candle windows and signals per process; tests store different candles under
    the same keys."""
    from bots.services import ticks
    from markets.candle_windows import forget_candle_windows

    forget_candle_windows()
    ticks._signals.clear()


@pytest.fixture
def password() -> str:
    return DEFAULT_PASSWORD


@pytest.fixture
def user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def other_user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def staff(db: Any) -> Any:
    """A superuser who may use the admin."""
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(staff: Any) -> Any:
    """A test client of its own (not ``client``), logged in as ``staff``."""
    from django.test import Client

    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def trader_client(client: Any, user: Any) -> Any:
    """The ``client``, logged in as ``user``."""
    client.force_login(user)
    return client


@pytest.fixture
def exchange_account_factory(db: Any) -> type[ExchangeAccountFactory]:
    return ExchangeAccountFactory


@pytest.fixture
def api_client() -> Any:
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def auth_client(api_client: Any, user: Any) -> Any:
    """An API client authenticated with a real token issued by the login service."""
    from accounts.services import api_token_issue

    issued = api_token_issue(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {issued.key}")
    return api_client


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database this test session really uses (for child processes)."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    auth = settings_dict["USER"] + (
        f":{settings_dict['PASSWORD']}" if settings_dict["PASSWORD"] else ""
    )
    host = f"{settings_dict['HOST'] or '127.0.0.1'}:{settings_dict['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{settings_dict['NAME']}"


def server_env(**extra: str) -> dict[str, str]:
    """The environment of a server process (daphne, a worker) on this session's test database,
    with ``extra`` variables. ``DJANGO_ALLOW_ASYNC_UNSAFE``, which the browser package sets for
    the test process alone, is left out."""
    from django.db import connection

    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict), **extra}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return env


@dataclass
class WorkerProcess:
    queue: str
    hostname: str
    process: subprocess.Popen[str]
    log_path: Path


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WorkerProcess]:
    """A real ``celery worker`` process on the test database, consuming a queue of its own.

    Tests send tasks with ``queue=worker.queue`` so that no other worker on the same broker
    (a developer's ``make run``) can take them. Tests that use it need ``transactional_db``.
    """
    from django.db import connection

    from tradingbot.celery import app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    hostname = f"{queue}@pytest"
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict)}
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tradingbot", "worker", "--pool", "solo",
         "--queues", queue, "--hostname", hostname, "--without-mingle", "--without-gossip",
         "--loglevel", "INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not app.control.ping(destination=[hostname], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"celery worker did not start:\n{log_path.read_text()}")
    yield WorkerProcess(queue=queue, hostname=hostname, process=process, log_path=log_path)
    process.terminate()
    process.wait(timeout=30)
    log.close()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """Hashing strength is Django's business; the suite need not spend seconds on PBKDF2."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def webhook_server() -> Iterator[Any]:
    """A real local HTTP server receiving ``json://`` notifications."""
    from tests.notify_helpers import start_webhook_server

    server = start_webhook_server()
    yield server
    server.stop()
