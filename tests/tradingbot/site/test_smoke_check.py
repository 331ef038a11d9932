"""``manage.py smoke_check`` run as operators run it: a subprocess, against a REAL running stack.

The stack is daphne and a Celery worker (consuming a queue of this module's own, for backtests
and bot ticks) on the test database and the test's Redis. The command runs with a
``DATABASE_URL`` that cannot be opened, so a check that touched the database instead of the
deployment would fail: it is a client of the deployment and nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher, make_password

from accounts.models import ApiToken
from backtests.models import Backtest
from bots.models import Bot
from markets.models import ExchangeAccount, PaperBalance
from strategies.services import strategy_catalogue_sync
from tests.backtests.worker_helpers import Worker, new_queue, start_workers
from tests.bots.bot_helpers import paper_account, store_candles
from tests.conftest import ROOT, server_env
from tests.daphne_process import Daphne
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.stack_helpers import free_port
from tests.tradingbot.live_server_helpers import daphne_serving
from tradingbot.site.smoke import CheckResult, format_table
from tradingbot.site.smoke_client import CheckFailed, envelope_code, ws_url

CHECKS = [
    "health",
    "login",
    "websocket",
    "strategies",
    "candles",
    "bot start/stop",
    "positions",
    "backtest",
    "error envelope",
    "cleanup",
]
NEED_LOGIN = ["websocket", "strategies", "candles", "bot start/stop", "positions", "backtest"]
# "name  PASS  123  detail": columns are separated by two spaces or more, names by one.
ROW = re.compile(
    r"^(?P<name>\S+(?: \S+)*)\s{2,}(?P<result>PASS|FAIL)\s+(?P<ms>\d+)  (?P<detail>.*)$"
)
COMMAND_TIMEOUT = 240


@dataclass
class Stack:
    daphne: Daphne
    worker: Worker


@pytest.fixture(scope="module")
def stack(django_db_setup: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    queue = new_queue()
    env = server_env(BACKTESTS_QUEUE=queue, BOTS_QUEUE=queue)
    log_dir = tmp_path_factory.mktemp("smoke-stack")
    (worker,) = start_workers(1, queue=queue, log_dir=log_dir, env=env)
    try:
        with daphne_serving(env=env, log_path=log_dir / "daphne.log") as server:
            yield Stack(daphne=server, worker=worker)
    finally:
        worker.stop()


class _QuickPBKDF2(PBKDF2PasswordHasher):
    """A hash the daphne process verifies (the suite's MD5 hasher is unknown to it), cheaply."""

    iterations = 1_000


@pytest.fixture
def trader(stack: Stack, transactional_db: Any) -> Any:
    """A user who can log in at the stack, with the market the checks read: 600 stored candles
    of bitget BTC/USDT 5m and the strategy catalogue. Committed, so the stack sees them."""
    if stack.daphne.process.poll() is not None:
        pytest.fail(f"daphne exited early:\n{stack.daphne.log()[-5000:]}")
    strategy_catalogue_sync()
    store_candles(0, 600)
    user: Any = UserFactory()
    user.password = make_password(DEFAULT_PASSWORD, hasher=_QuickPBKDF2())
    user.save(update_fields=["password"])
    return user


def smoke_check(
    url: str, email: str, password: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/no-such-dir/never.sqlite3"}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    return subprocess.run(
        [sys.executable, "manage.py", "smoke_check", "--url", url, "--email", email,
         "--password", password, "--backtest-timeout", "120"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False,
    )  # fmt: skip


def rows(stdout: str) -> dict[str, tuple[str, str]]:
    """The table: check name -> (PASS or FAIL, detail), in the printed order."""
    table = {}
    for line in stdout.splitlines():
        if match := ROW.match(line):
            table[match["name"]] = (match["result"], match["detail"])
    return table


def owned_by(user: Any) -> dict[str, int]:
    return {
        "bots": Bot.objects.filter(user=user).count(),
        "backtests": Backtest.objects.filter(user=user).count(),
        "tokens": ApiToken.objects.filter(user=user).count(),
        "exchange accounts": ExchangeAccount.objects.filter(user=user).count(),
    }


def nothing_went_wrong(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_it_passes_every_check_against_a_running_stack_and_leaves_nothing_behind(
    stack: Stack, trader: Any, tmp_path: Path
) -> None:
    # given: a trader without exchange accounts, bots, backtests or tokens
    before = owned_by(trader)
    assert before == {"bots": 0, "backtests": 0, "tokens": 0, "exchange accounts": 0}
    daphne_mark = stack.daphne.log_mark()

    # when
    result = smoke_check(stack.daphne.url, trader.email, DEFAULT_PASSWORD, tmp_path)

    # then: exit 0, every row PASS, in the checklist's order
    table = rows(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(table) == CHECKS, result.stdout
    assert {name: verdict for name, (verdict, _) in table.items()} == dict.fromkeys(CHECKS, "PASS")
    assert "10 of 10 checks passed" in result.stdout
    nothing_went_wrong(result)
    # the work really went through the stack: the bot ran, the worker ran the backtest
    assert "stopped → running → stopped" in table["bot start/stop"][1]
    assert "opened for the check" in table["bot start/stop"][1]
    assert "200 5m candles" in table["candles"][1]
    assert re.search(r"backtest #\d+ done", table["backtest"][1]), table["backtest"][1]
    assert "backtests.tasks.run_backtest_task" in stack.worker.wait_for_log(" succeeded in ")
    assert "revoked" in table["cleanup"][1]
    # and everything it made is gone again, the token it was issued included
    assert owned_by(trader) == before
    server_log = stack.daphne.log_since(daphne_mark)
    assert "Traceback" not in server_log, server_log
    assert " ERROR " not in server_log, server_log


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_it_uses_the_traders_own_paper_account_and_keeps_it(
    stack: Stack, trader: Any, tmp_path: Path
) -> None:
    # given: the trader has a paper account already
    account = paper_account(trader, usdt="2500", label="My paper")

    # when
    result = smoke_check(stack.daphne.url, trader.email, DEFAULT_PASSWORD, tmp_path)

    # then: the check ran on it, and it is still there, untouched
    table = rows(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"paper account #{account.pk} (the user's)" in table["bot start/stop"][1]
    assert list(ExchangeAccount.objects.filter(user=trader)) == [account]
    balances = {b.currency: (b.free, b.used) for b in PaperBalance.objects.filter(account=account)}
    assert balances == {"USDT": (Decimal("2500"), Decimal(0))}
    assert owned_by(trader) == {"bots": 0, "backtests": 0, "tokens": 0, "exchange accounts": 1}


@pytest.mark.stack
@pytest.mark.timeout(300)
def test_a_wrong_password_fails_login_and_what_needs_it(
    stack: Stack, trader: Any, tmp_path: Path
) -> None:
    # when
    result = smoke_check(stack.daphne.url, trader.email, "not the password", tmp_path)

    # then: a non-zero exit, login FAIL with the reason, the checks that need it skipped
    table = rows(result.stdout)
    assert result.returncode != 0
    assert list(table) == CHECKS, result.stdout
    assert table["health"][0] == table["error envelope"][0] == table["cleanup"][0] == "PASS"
    assert table["login"][0] == "FAIL"
    assert "401 (invalid_credentials" in table["login"][1]
    for name in NEED_LOGIN:
        verdict, detail = table[name]
        assert (verdict, detail[:15]) == ("FAIL", "skipped: needs "), name
    assert "CommandError: smoke check failed: login, websocket" in result.stderr
    nothing_went_wrong(result)
    assert owned_by(trader) == {"bots": 0, "backtests": 0, "tokens": 0, "exchange accounts": 0}


@pytest.mark.process
def test_a_closed_port_fails_every_check_that_needs_the_server(tmp_path: Path) -> None:
    # given: a port nothing listens on
    url = f"http://127.0.0.1:{free_port()}"

    # when
    result = smoke_check(url, "ops@example.com", "secret", tmp_path)

    # then
    table = rows(result.stdout)
    assert result.returncode != 0
    assert list(table) == CHECKS, result.stdout
    for name in ("health", "login", "error envelope"):
        verdict, detail = table[name]
        assert verdict == "FAIL", name
        assert "cannot reach the server" in detail, (name, detail)
    assert all(table[name][1].startswith("skipped: ") for name in NEED_LOGIN)
    assert table["cleanup"] == ("PASS", "nothing to remove")
    assert "1 of 10 checks passed" in result.stdout
    nothing_went_wrong(result)


# --- the pure parts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/"),
        ("https://bots.example.com/", "wss://bots.example.com/ws/"),
        ("https://example.com/trading/", "wss://example.com/trading/ws/"),
    ],
)
def test_it_derives_the_websocket_url_from_the_base_url(base: str, expected: str) -> None:
    assert ws_url(base) == expected


def test_it_accepts_only_the_documented_error_envelope() -> None:
    good = {"error": {"code": "malformed_request", "message": "JSON parse error", "details": {}}}
    assert envelope_code(good) == "malformed_request"
    for bad in (
        {"detail": "JSON parse error"},
        {"error": {"code": "x", "message": "y"}},
        {"error": {"code": "x", "message": "", "details": {}}},
        {"error": {"code": "x", "message": "y", "details": []}},
        {**good, "status": 400},
        "Bad Request",
    ):
        with pytest.raises(CheckFailed):
            envelope_code(bad)


def test_the_table_lines_up_and_counts_what_passed() -> None:
    results = [
        CheckResult("health", True, 3, "database ok, redis ok"),
        CheckResult("bot start/stop", False, 1234, "skipped: needs login, which did not pass"),
    ]

    table = format_table(results).splitlines()

    assert table == [
        "check           result    ms  detail",
        "health          PASS       3  database ok, redis ok",
        "bot start/stop  FAIL    1234  skipped: needs login, which did not pass",
        "1 of 2 checks passed",
    ]
    assert rows("\n".join(table)) == {
        "health": ("PASS", "database ok, redis ok"),
        "bot start/stop": ("FAIL", "skipped: needs login, which did not pass"),
    }
