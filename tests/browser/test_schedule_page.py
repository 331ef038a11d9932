"""A schedule's page in headless Chromium: its next run in the trader's time zone, run now,
pause and resume, the warning when its period has no stored candles, and delete behind a
confirmation (the services and forms are tested in ``tests/backtests/test_schedule_pages.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from backtests.models import Backtest, BacktestSchedule
from backtests.schedule_status import schedule_next_run
from tests.backtests.conftest import sample_candles, strategy_catalogue  # noqa: F401 - fixtures
from tests.backtests.test_pages import make_schedule
from tests.browser.conftest import log_in

pytestmark = pytest.mark.browser


@pytest.fixture
def tokyo_page(browser: Any, server: Any) -> Iterator[Any]:
    """A page in a browser set to Tokyo: the login takes the browser's time zone."""
    context = browser.new_context(base_url=server.url, timezone_id="Asia/Tokyo")
    yield context.new_page()
    context.close()


def test_a_trader_runs_pauses_and_deletes_a_schedule_from_its_page(
    tokyo_page,
    trader,
    password,
    sample_candles,  # noqa: F811 - the imported fixture
):
    # given a trader in Tokyo with a schedule over the stored candles (10 years back) and one
    # over the last day, where nothing is stored
    page = tokyo_page
    covered = make_schedule(trader, sample_candles, name="Decade", lookback_days=3650)
    empty = make_schedule(trader, sample_candles, name="Yesterday", lookback_days=1)
    log_in(page, trader.email, password)

    # when the trader opens the first one's page
    page.goto(f"/schedules/{covered.pk}/")

    # then its next run is Celery's reading of its cron, in Tokyo time, and it warns that the
    # stored candles (two weeks of 2023) cover only part of its period
    upcoming = schedule_next_run(covered, datetime.now(tz=UTC))
    assert upcoming is not None
    shown = upcoming.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M JST")
    expect(page.locator("#schedule-next-run")).to_have_text(shown)
    expect(page.locator("#schedule-candles-warning h2")).to_have_text(
        "Candles for part of its period only"
    )

    # when it runs it now: a backtest of the last 10 years is queued and listed in its history
    page.click("#schedule-actions button:has-text('Run now')")
    backtest = Backtest.objects.get(schedule=covered)
    expect(page.locator(".messages")).to_contain_text(f"Backtest #{backtest.pk} queued")
    expect(page.locator(f"#schedule-history #backtest-{backtest.pk}")).to_be_visible()

    # when it pauses it: no next run, and "Run now" waits for a resume
    page.click("#schedule-actions button:has-text('Pause')")
    expect(page.locator("#schedule-state")).to_have_text("Paused")
    expect(page.locator("#schedule-next-run")).to_contain_text("paused")
    expect(page.locator("#schedule-actions button:has-text('Run now')")).to_be_disabled()
    page.click("#schedule-actions button:has-text('Resume')")
    expect(page.locator("#schedule-state")).to_have_text("Active")

    # and the schedule over the last day warns that its period has no stored candles
    page.goto(f"/schedules/{empty.pk}/")
    expect(page.locator("#schedule-candles-warning h2")).to_have_text("No candles for its period")
    expect(page.locator("#schedule-candles-warning")).to_contain_text("a run now would fail")

    # when the trader deletes it: asked first; "Cancel" keeps it, "OK" deletes it
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("#schedule-actions button:has-text('Delete')")
    expect(page).to_have_url(re.compile(rf"/schedules/{empty.pk}/$"))
    assert BacktestSchedule.objects.filter(pk=empty.pk).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#schedule-actions button:has-text('Delete')")
    expect(page).to_have_url(re.compile(r"/schedules/$"))
    expect(page.locator(f"#schedule-{empty.pk}")).to_have_count(0)
    expect(page.locator(f"#schedule-{covered.pk}")).to_be_visible()
    assert not BacktestSchedule.objects.filter(pk=empty.pk).exists()
