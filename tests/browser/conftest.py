"""End-to-end fixtures: a real daphne server on the test database and one headless Chromium.

The server is a subprocess (``python -m daphne``) started once per session with
``DATABASE_URL`` pointing at the test database, so tests that commit data (``transactional_db``)
are seen by it. Redis and the dev keys come from the same environment (``TRADINGBOT_VAR_DIR``,
``REDIS_URL``) as the test process, so sessions, encrypted fields and the login throttle agree.

Playwright's sync API keeps an asyncio loop running in this thread while it is alive, which makes
Django refuse ORM calls (``SynchronousOnlyOperation``) and would break ``asyncio.run`` in any later
test. So the browser lives only while this package runs (package scope), and
``DJANGO_ALLOW_ASYNC_UNSAFE`` is set for exactly that time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password

from tests.conftest import WorkerProcess, server_env
from tests.daphne_process import Daphne, daphne_running
from tests.factories import DEFAULT_PASSWORD, ExchangeAccountFactory, UserFactory

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Skip every browser test (before any server starts) when Chromium is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


@pytest.fixture(scope="session")
def daphne_server(
    chromium: str, django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daphne]:
    """``python -m daphne`` serving the app on a free port, on the test database."""
    log_path = tmp_path_factory.mktemp("daphne") / "daphne.log"
    with daphne_running(env=server_env(), log_path=log_path) as server:
        yield server


@pytest.fixture(scope="package")
def browser(chromium: str) -> Iterator[Any]:
    """One headless Chromium for the whole package; each test gets its own context."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def server(daphne_server: Daphne, transactional_db: Any) -> Daphne:
    """The running server, with this test's data committed so that it can see it."""
    if daphne_server.process.poll() is not None:
        pytest.fail(f"daphne exited early:\n{daphne_server.log()}")
    return daphne_server


@pytest.fixture
def worker(celery_worker_process: WorkerProcess, server: Daphne, settings: Any) -> WorkerProcess:
    """The session's worker, which the ticks this test sends go to."""
    settings.BOTS_QUEUE = celery_worker_process.queue
    return celery_worker_process


@pytest.fixture
def page(browser: Any, server: Daphne) -> Iterator[Any]:
    """A fresh page in a fresh context (own cookies), with relative URLs against the server."""
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


class _QuickPBKDF2(PBKDF2PasswordHasher):
    """A real PBKDF2 hash the server verifies, cheap to make (the server upgrades it on login).

    The session-wide MD5 hasher of ``tests/conftest.py`` is unknown to the daphne process, so users
    who log in through the browser need a hash from its own list.
    """

    iterations = 1_000


def _browser_user(**fields: Any) -> Any:
    user = UserFactory(**fields)
    user.password = make_password(DEFAULT_PASSWORD, hasher=_QuickPBKDF2())
    user.save(update_fields=["password"])
    return user


@pytest.fixture
def trader_factory(server: Daphne) -> Callable[..., Any]:
    """Makes users who can log in through the daphne server (``UserFactory`` fields allowed)."""
    return _browser_user


@pytest.fixture
def trader(trader_factory: Callable[..., Any]) -> Any:
    return trader_factory()


@pytest.fixture
def other_trader(trader_factory: Callable[..., Any]) -> Any:
    return trader_factory()


@pytest.fixture
def account_factory(server: Daphne) -> type[ExchangeAccountFactory]:
    return ExchangeAccountFactory


def log_in(page: Any, email: str, password: str, path: str = "/accounts/login/") -> None:
    page.goto(path)
    page.fill("#id_email", email)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("button:has-text('Log in')")


@pytest.fixture
def logged_in_page(page: Any, trader: Any, password: str) -> Any:
    log_in(page, trader.email, password)
    assert page.url.endswith("/dashboard/"), page.url
    return page
