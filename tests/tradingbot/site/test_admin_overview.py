"""The staff overview on the admin index: the bots at work and the last day's failures, shown to
active staff only, each part only to staff who may view its model, in a fixed number of queries.

Rows are put in the states the overview reads (a bot in error, an old warning, a failed
backtest) directly: the overview only reads them, and how they get there is tested elsewhere.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from backtests.models import Backtest, RunStatus, Sweep
from bots.models import Bot, BotEvent
from markets.models import ExchangeAccount
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import paper_account, replay_bot, store_candles
from tests.factories import UserFactory
from tradingbot.site import admin_overview

NOW = timezone.now()


@pytest.fixture
def rows(db: Any) -> list[Any]:
    strategy_catalogue_sync()
    return store_candles(2000, 5)


def make_bot(user: User, rows: list[Any], name: str, status: str, **fields: Any) -> Bot:
    account = ExchangeAccount.objects.filter(user=user).first() or paper_account(user)
    bot = replay_bot(user, account, start_ms=rows[0].open_time, name=name).bot
    Bot.objects.filter(pk=bot.pk).update(status=status, **fields)
    bot.refresh_from_db()
    return bot


def make_event(bot: Bot, level: str, message: str, *, hours_ago: float = 1) -> BotEvent:
    event = BotEvent.objects.create(bot=bot, level=level, kind="tick", message=message)
    BotEvent.objects.filter(pk=event.pk).update(time=NOW - timedelta(hours=hours_ago))
    return event


def run_fields(user: User, status: str, *, hours_ago: float = 1, **fields: Any) -> dict[str, Any]:
    return {
        "user": user, "strategy_id": "ma_cross", "params": {}, "exchange": "bitget",
        "symbol": "BTC/USDT", "timeframe": "5m", "initial_cash": Decimal(10000),
        "fee_rate": Decimal("0.001"), "start": NOW - timedelta(days=9),
        "end": NOW - timedelta(days=2), "status": status,
        "finished_at": NOW - timedelta(hours=hours_ago), **fields,
    }  # fmt: skip


def make_sweep(user: User, status: str, **fields: Any) -> Sweep:
    return Sweep.objects.create(
        **run_fields(user, status, **fields), grid={"fast": [5, 10]}, rank_by="sharpe",
        combination_count=2,
    )  # fmt: skip


def section(html: str, name: str) -> str:
    """The HTML of one part of the panel ("" when it is not on the page)."""
    found = re.search(rf'<div class="module" id="overview-{name}">(.*?)</div>', html, re.S)
    return found.group(1) if found else ""


# --- who sees it --------------------------------------------------------------------------------


def test_anonymous_visitors_and_traders_are_sent_to_the_admin_login(user):
    trader = Client()
    trader.force_login(user)

    for client in (Client(), trader):
        response = client.get("/admin/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_see_only_the_parts_they_may_view(user, rows):
    # given: staff who may view backtests, nothing else; a bot in error and a failed backtest
    make_bot(user, rows, "broken bot", "error", last_error="exchange said no")
    Backtest.objects.create(**run_fields(user, RunStatus.FAILED, error="no candles at all"))
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_backtest"))
    client = Client()
    client.force_login(viewer)

    # when
    html = client.get("/admin/").content.decode()

    # then
    assert "no candles at all" in section(html, "backtests-failed")
    assert section(html, "bots") == section(html, "bot-problems") == ""
    assert "broken bot" not in html
    assert "exchange said no" not in html
    assert section(html, "sweeps-failed") == ""
    assert "Kill switch" not in html


# --- what it shows ------------------------------------------------------------------------------


def test_staff_see_the_bots_at_work_and_the_last_days_failures(staff_client, user, rows):
    # given: bots in every status, events of every level and age, runs in every outcome
    running = make_bot(user, rows, "runner", "running", last_tick_at=NOW - timedelta(minutes=3))
    broken = make_bot(user, rows, "broken", "error", last_error="exchange rejected the API key")
    stopping = make_bot(user, rows, "stopper", "stopping")
    make_bot(user, rows, "sleeper", "stopped")
    make_event(broken, "error", "strategy blew up")
    make_event(running, "warning", "exchange unreachable, retrying")
    make_event(running, "info", "held the position")
    make_event(broken, "error", "an old failure", hours_ago=25)
    failed = Backtest.objects.create(**run_fields(user, RunStatus.FAILED, error="worker lost"))
    Backtest.objects.create(**run_fields(user, RunStatus.FAILED, error="last week", hours_ago=30))
    Backtest.objects.create(**run_fields(user, RunStatus.DONE, error=""))
    partly = make_sweep(user, RunStatus.DONE, failed_count=1, done_count=1)
    make_sweep(user, RunStatus.DONE, done_count=2)
    lost = make_sweep(user, RunStatus.FAILED, failed_count=2, error="every combination failed")

    # when
    html = staff_client.get("/admin/").content.decode()

    # then: active bots, errors first, with their owner, market, last tick and last error
    bots = section(html, "bots")
    assert bots.index("broken") < bots.index("stopper") < bots.index("runner")
    assert "sleeper" not in bots
    assert user.email in bots
    assert "exchange rejected the API key" in bots
    assert f"/admin/bots/bot/{running.pk}/change/" in bots
    assert (NOW - timedelta(minutes=3)).strftime("%Y-%m-%d %H:%M") in bots
    assert "1 error" in bots
    assert "1 stopping" in bots
    assert "1 running" in bots
    assert "Kill switch" in bots
    assert stopping.name in bots
    # the last day's errors and warnings, not its info events nor older ones
    problems = section(html, "bot-problems")
    assert "strategy blew up" in problems
    assert "exchange unreachable, retrying" in problems
    assert "held the position" not in problems
    assert "an old failure" not in problems
    # the last day's failed runs
    backtests = section(html, "backtests-failed")
    assert f"/admin/backtests/backtest/{failed.pk}/change/" in backtests
    assert "worker lost" in backtests
    assert "last week" not in backtests
    sweeps = section(html, "sweeps-failed")
    assert f"/admin/backtests/sweep/{partly.pk}/change/" in sweeps
    assert f"/admin/backtests/sweep/{lost.pk}/change/" in sweeps
    assert "every combination failed" in sweeps
    assert sweeps.count("/admin/backtests/sweep/") == 2
    assert "/admin/admin/logentry/" in html  # the audit trail


def test_the_index_costs_the_same_queries_for_many_rows(staff_client, user, other_user, rows):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert staff_client.get("/admin/").status_code == 200
        return len(captured)

    make_bot(user, rows, "first", "running")
    Backtest.objects.create(**run_fields(user, RunStatus.FAILED, error="x"))
    few = queries()
    for owner in (user, other_user):
        for n in range(6):
            bot = make_bot(owner, rows, f"bot {n}", "error", last_error="boom")
            make_event(bot, "error", "boom")
            Backtest.objects.create(**run_fields(owner, RunStatus.FAILED, error="x"))
            make_sweep(owner, RunStatus.FAILED, failed_count=2)

    assert queries() == few


# --- the selectors ------------------------------------------------------------------------------


def test_bots_in_error_come_first_then_stopping_then_running_stalest_first(user, rows):
    fresh = make_bot(user, rows, "fresh", "running", last_tick_at=NOW)
    stale = make_bot(user, rows, "stale", "running", last_tick_at=NOW - timedelta(hours=2))
    never = make_bot(user, rows, "never", "running", last_tick_at=None)
    broken = make_bot(user, rows, "broken", "error", last_tick_at=NOW)
    stopping = make_bot(user, rows, "stopping", "stopping", last_tick_at=NOW)
    make_bot(user, rows, "stopped", "stopped")

    listed = admin_overview.bots_active()

    assert [bot.pk for bot in listed] == [broken.pk, stopping.pk, never.pk, stale.pk, fresh.pk]
    assert admin_overview.bots_active(limit=2) == listed[:2]


def test_bot_status_counts_name_every_active_status(user, rows):
    make_bot(user, rows, "one", "running")
    make_bot(user, rows, "two", "running")
    make_bot(user, rows, "off", "stopped")

    assert admin_overview.bot_status_counts() == {
        "error": 0,
        "stopping": 0,
        "degraded": 0,
        "running": 2,
    }


def test_a_degraded_bot_is_counted_listed_before_running_ones_and_shows_its_reason(
    staff_client, user, rows
):
    # given: two running bots, one of them failing at its exchange for a while
    healthy = make_bot(user, rows, "healthy", "running", last_tick_at=NOW - timedelta(hours=1))
    failing = make_bot(
        user,
        rows,
        "failing",
        "running",
        last_tick_at=NOW,
        degraded_since=NOW - timedelta(minutes=5),
        degraded_reason="bitget unreachable: RequestTimeout",
    )

    # when: staff open the admin index
    page = staff_client.get("/admin/")

    # then: it is counted and listed as degraded, ahead of the healthy one, with the reason
    assert admin_overview.bot_status_counts() == {
        "error": 0,
        "stopping": 0,
        "degraded": 1,
        "running": 1,
    }
    assert [bot.pk for bot in admin_overview.bots_active()] == [failing.pk, healthy.pk]
    bots = section(page.content.decode(), "bots")
    assert "1 degraded" in bots
    assert re.search(r"<td>degraded</td>\s*<td>[^<]*</td>\s*<td>bitget unreachable", bots)
