"""A trader's whole day in headless Chromium, against the real stack: daphne, a Celery worker,
Redis and the test database.

One trader logs in, adds a paper account, creates an MA Cross bot on the replay feed with the
bot form, starts it, watches candles and the first trade marker arrive on the chart without a
reload (the worker ticks the bot; beat's dispatcher is played by the test, sending the ticks),
stops it, then runs a backtest and watches its page follow it to done and render the results.
A second trader cannot open the first one's bot (404). Each main page's screenshot is saved as
a test artifact in ``$TEST_ARTIFACTS_DIR`` (default ``var/test-artifacts``); with
``UPDATE_SCREENSHOTS=1`` the dashboard's also replaces the README's.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.template.defaultfilters import floatformat
from django.utils import timezone
from playwright.sync_api import expect

from backtests.models import Backtest
from bots.models import Bot, Position, Trade
from bots.services import accounts_equity_record
from bots.services.dispatch import send_tick
from strategies.services import strategy_catalogue_sync
from tests.bots.worker_ticks_helpers import replay_start, store_replay
from tests.browser.conftest import log_in
from tests.browser.test_live_client import LIVE
from tests.conftest import ROOT, WorkerProcess, server_env
from tests.daphne_process import Daphne, daphne_running

pytestmark = pytest.mark.browser

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", ROOT / "var" / "test-artifacts"))
REPLAY_SPEED = 30  # candles a minute: a new candle every 2 s of the test
TICK_EVERY = 1.0  # s, as beat's dispatcher would send them


@pytest.fixture
def stack_daphne(worker: WorkerProcess, tmp_path: Path) -> Iterator[Daphne]:
    """A daphne whose bots and backtests go to the worker's queue (as ``make run``'s go to its
    worker), on the test database and Redis."""
    env = server_env(BOTS_QUEUE=worker.queue, BACKTESTS_QUEUE=worker.queue)
    with daphne_running(env=env, log_path=tmp_path / "daphne.log") as daphne:
        yield daphne


@pytest.fixture
def replay_candles(server: Daphne) -> int:
    """Stored candles around a start where MA Cross (5, 20) buys on its first tick and stays
    long for a while: the replay's start, epoch ms."""
    strategy_catalogue_sync()
    return store_replay(replay_start(then=1, candles=60), after=400).start_ms


class Ticker:
    """Beat's dispatcher for one bot: a tick sent to the worker every ``TICK_EVERY`` seconds."""

    def __init__(self, bot_id: int) -> None:
        self.bot_id = bot_id
        self.queue = django_settings.BOTS_QUEUE
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(TICK_EVERY):
            send_tick(self.bot_id)

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def chart_count(page: Any, attribute: str) -> int:
    return int(page.locator("#bot-chart").get_attribute(f"data-{attribute}") or 0)


@pytest.fixture
def flow_page(browser: Any, stack_daphne: Daphne) -> Iterator[Any]:
    context = browser.new_context(
        base_url=stack_daphne.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(LIVE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], errors  # no script on any page threw


def test_a_trader_runs_a_bot_then_a_backtest_and_another_trader_cannot_see_it(
    browser, flow_page, stack_daphne, worker, replay_candles, trader, other_trader, password
):
    page = flow_page
    url = stack_daphne.url
    # 1. log in: the dashboard, empty, says what to do first
    log_in(page, trader.email, password)
    expect(page).to_have_url(f"{url}/dashboard/")
    expect(page.locator("#dashboard-accounts")).to_contain_text("Add a paper account")
    screenshot(page, "dashboard-empty")

    # 2. add a paper account
    page.goto("/exchange-accounts/")
    page.fill("#id_label", "Paper desk")
    page.check("input[name=mode][value=paper]")
    page.click("#add-exchange-account button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Paper desk")
    screenshot(page, "exchange-accounts")
    accounts_equity_record(now=timezone.now() - timedelta(minutes=3))  # beat's minutely sample

    # 3. create an MA Cross bot on the replay feed with the form
    page.goto("/bots/new/")
    page.fill("#id_name", "BTC cross")
    page.select_option("#id_exchange_account", label="Paper desk (Paper)")
    page.select_option("#id_strategy", "ma_cross")
    expect(page.locator("#params-ma_cross")).to_be_visible()
    expect(page.locator("#params-macd")).to_be_hidden()
    page.fill("#id_ma_cross-fast", "5")
    page.fill("#id_ma_cross-slow", "20")
    page.check("input[name=data_source][value=replay]")
    start = datetime.fromtimestamp(replay_candles / 1000, tz=UTC)  # the browser's zone is UTC
    page.fill("#id_replay_start", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_replay_speed", str(REPLAY_SPEED))
    screenshot(page, "bot-new")
    page.click("#bot-form button[type=submit]")
    bot = Bot.objects.get(user=trader, name="BTC cross")
    expect(page).to_have_url(f"{url}/bots/{bot.pk}/")
    assert (bot.strategy_id, bot.data_source, bot.replay_start_ms) == (
        "ma_cross", "replay", replay_candles,
    )  # fmt: skip
    assert bot.params["fast"] == 5
    assert bot.params["slow"] == 20

    # 4. start it
    page.click("#bot-start button")
    expect(page.locator("#bot-status")).to_have_text("Running")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")
    page.evaluate("() => { window.notReloaded = true; }")
    first_candles = chart_count(page, "candles")
    assert first_candles > 0
    assert chart_count(page, "markers") == 0

    # 5. candles and a first trade marker appear without reloading, as the worker ticks it
    with Ticker(bot.pk):
        page.wait_for_function(
            "() => Number(document.getElementById('bot-chart').dataset.markers) >= 1"
        )
        page.wait_for_function(
            f"() => Number(document.getElementById('bot-chart').dataset.candles) > {first_candles}"
        )
        expect(page.locator("#bot-trades tbody tr").first).to_contain_text("buy")
        assert page.evaluate("() => window.notReloaded") is True
        assert page.locator("#bot-chart").get_attribute("data-entry")  # the entry-price line
        # its equity curve grows live too, a point per candle it acts on
        page.wait_for_function(
            "() => Number(document.getElementById('bot-equity-chart').dataset.points) >= 2"
        )
        screenshot(page, "bot-detail")

        # 6. stop it and close the position (the ticks go on, as beat's would: a stopping
        # bot's tick finishes it)
        page.check("#bot-stop input[name=flatten]")
        page.click("#bot-stop button")
        expect(page.locator("#bot-status")).to_have_text("Stopped")
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.STOPPED

    # the dashboard shows the bot, its fill and its events, and its performance: beat samples
    # the paper accounts' equity each minute (played here), the sale is on the replayed day
    accounts_equity_record(now=timezone.now() - timedelta(minutes=1))
    accounts_equity_record()
    sale = Trade.objects.filter(bot=bot, side="sell").latest("time")
    midnight = sale.time.replace(hour=0, minute=0, second=0, microsecond=0)  # the trader's: UTC
    today = sum(t.pnl for t in Trade.objects.filter(bot=bot, time__gte=midnight))
    page.goto("/dashboard/")
    expect(page.locator(f"#bot-{bot.pk} .bot-status")).to_have_text("Stopped")
    expect(page.locator(f"#bot-{bot.pk} form.bot-start button")).to_be_visible()
    expect(page.locator(f"#bot-{bot.pk} form.bot-stop button")).to_be_hidden()
    # and once its snapshot has redrawn the row live, it reads as the server drew it
    page.wait_for_function("() => (window.Live.stats.received['bot.snapshot'] || 0) >= 1")
    position = Position.objects.get(bot=bot)
    row = page.locator(f"#bot-{bot.pk}")
    expect(row.locator(".position-qty")).to_have_text(floatformat(position.qty, "-8"))
    expect(row.locator(".unrealised-pnl")).to_have_text(floatformat(position.unrealized_pnl, 2))
    expect(page.locator("#dashboard-trades tbody tr").first).to_contain_text("BTC cross")
    expect(page.locator("#equity-chart")).to_have_attribute("data-points", "3")
    expect(page.locator("#equity-chart canvas").first).to_be_visible()
    day = page.locator("#performance-table tbody tr").first
    expect(day).to_contain_text(f"{midnight:%Y-%m-%d}")
    expect(day.locator("td").nth(1)).to_have_text(floatformat(today, 2))
    expect(row.locator(".sparkline svg")).to_be_visible()
    expect(page.locator("#total-today")).to_have_text(f"{floatformat(today, 2)} USDT")
    page.click(".period-switch button[data-period=month]")
    expect(page.locator("#performance-table tbody tr").first).to_contain_text(f"{midnight:%Y-%m}")
    page.click(".period-switch button[data-period=day]")  # back to days for the screenshot
    expect(day).to_contain_text(f"{midnight:%Y-%m-%d}")
    header = page.locator("#total-equity").inner_text().removesuffix(" USDT")
    expect(page.locator("#exchange-accounts tbody td").nth(4)).to_have_text(header)
    screenshot(page, "dashboard")
    # The README's screenshot is refreshed on request only, so a test run never dirties the tree.
    if os.environ.get("UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(ROOT / "docs" / "screenshot-dashboard.png"), full_page=True)

    # 7. run a backtest of the same strategy on the replayed stretch; the page follows it live
    # to done (it reloads itself when the worker finishes) and renders the results
    page.goto("/backtests/new/")
    page.select_option("#id_strategy", "ma_cross")
    page.wait_for_load_state()
    page.fill("#id_symbol", "BTC/USDT")
    page.select_option("#id_timeframe", "5m")
    end = datetime.fromtimestamp(replay_candles / 1000 + 300 * 5 * 60, tz=UTC)
    page.fill("#id_start", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_end", end.strftime("%Y-%m-%dT%H:%M"))
    screenshot(page, "backtest-new")
    page.click("form.run-form button.primary")
    expect(page).to_have_url(re.compile(rf"{url}/backtests/\d+/$"))
    backtest = Backtest.objects.get(user=trader)
    expect(page.locator(".run-status [data-role='status']").first).to_have_text("Done")
    expect(page.locator("#backtest-metrics")).to_be_visible()
    for chart in ("#chart-price", "#chart-equity", "#chart-drawdown"):
        expect(page.locator(f"{chart} canvas").first).to_be_visible()
    backtest.refresh_from_db()
    assert backtest.status == "done"
    assert backtest.progress == 1
    expect(page.locator("#backtest-trades tbody tr")).to_have_count(min(backtest.trade_count, 100))
    expect(page.locator("#comparison-return")).to_be_visible()
    screenshot(page, "backtest-detail")
    page.goto("/backtests/")
    expect(page.locator(f"a[href='/backtests/{backtest.pk}/']").first).to_be_visible()
    screenshot(page, "backtests")

    for name, path in (("sweeps", "/sweeps/"), ("schedules", "/schedules/"),
                       ("strategies", "/strategies/"), ("bots", "/bots/")):  # fmt: skip
        page.goto(path)
        expect(page.locator("h1")).to_be_visible()
        screenshot(page, name)

    # the pages fit a phone's width: nothing makes the page scroll sideways
    phone = browser.new_context(base_url=url, viewport={"width": 375, "height": 740})
    try:
        small = phone.new_page()
        log_in(small, trader.email, password)
        for path in ("/dashboard/", f"/bots/{bot.pk}/", "/bots/new/", "/exchange-accounts/",
                     f"/backtests/{backtest.pk}/", "/strategies/"):  # fmt: skip
            small.goto(path)
            overflow = small.evaluate(
                "() => document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} is {overflow} px wider than the phone"
        small.goto("/dashboard/")
        screenshot(small, "dashboard-phone")
    finally:
        phone.close()

    # 8. a second trader cannot open the first trader's bot, nor the backtest
    other = browser.new_context(base_url=url)
    try:
        other_page = other.new_page()
        log_in(other_page, other_trader.email, password)
        response = other_page.goto(f"/bots/{bot.pk}/")
        assert response is not None
        assert response.status == 404
        response = other_page.goto(f"/bots/{bot.pk}/edit/")
        assert response is not None
        assert response.status == 404
        response = other_page.goto(f"/backtests/{backtest.pk}/")
        assert response is not None
        assert response.status == 404
        expect(other_page.locator("body")).not_to_contain_text("BTC cross")
    finally:
        other.close()
