"""A backtest's page in a real Chromium against a real daphne: a finished backtest draws its
charts (Lightweight Charts canvases, no JavaScript error, nothing wider than a phone), its
strategy's indicators and readable markers for its 218 trades (the demo backtest), and its
report; a running one's progress bar follows the ``backtest.status`` events published through
the channel layer, as a worker publishes them, until the page reloads itself on the final status.
"""

from __future__ import annotations

import dataclasses
import functools
from decimal import Decimal
from typing import Any

import pytest
from playwright.sync_api import expect

from backtests import services
from backtests.models import Backtest, RunStatus
from backtests.spec import RunSpec
from backtests.views import TRADES_PAGE_SIZE
from markets.candle_csv import read_candle_file
from markets.candles import SAMPLE_PATH
from markets.models import Candle
from strategies.services import strategy_catalogue_sync
from tests.backtests.conftest import EXCHANGE, SYMBOL, TIMEFRAME, _as_datetime
from tests.browser.conftest import log_in
from tradingbot.events import object_event, object_groups, publish_now

pytestmark = pytest.mark.browser

LIVE = 30_000  # ms a page may take to reach a state (the machine is slow and shared)
CANDLES = 1000
CHARTS = ("#chart-price", "#chart-equity", "#chart-drawdown")


@functools.cache
def sample_file_rows() -> list[Any]:
    """Every candle of the shipped BTC/USDT sample (10,999: the demo backtest's)."""
    return list(read_candle_file(SAMPLE_PATH, timeframe=TIMEFRAME).rows)


def store_sample(count: int) -> tuple[Any, Any]:
    """The first ``count`` candles of the shipped sample; their period [start, end)."""
    rows = sample_file_rows()[:count]
    Candle.objects.bulk_create(
        Candle(exchange=EXCHANGE, symbol=SYMBOL, timeframe=TIMEFRAME, **row._asdict())
        for row in rows
    )
    return _as_datetime(rows[0].open_time), _as_datetime(rows[-1].open_time + 1)


def backtest_of(
    trader: Any, *, run: bool, candles: int = CANDLES, params: dict[str, Any] | None = None
) -> Backtest:
    strategy_catalogue_sync()
    start, end = store_sample(candles)
    spec = RunSpec(
        strategy="ma_cross",
        params=params or {"fast": 5, "slow": 20},
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe=TIMEFRAME,
        initial_cash=Decimal(10000),
        fee_rate=Decimal("0.001"),
    )
    backtest = services.backtest_create(user=trader, spec=spec, start=start, end=end, enqueue=False)
    if run:
        assert services.backtest_execute(backtest_id=backtest.pk) == RunStatus.DONE
    backtest.refresh_from_db()
    return backtest


def same_period(backtest: Backtest, *, strategy: str, params: dict[str, Any]) -> Backtest:
    """A finished backtest of another strategy over the same candles."""
    spec = dataclasses.replace(backtest.run_spec(), strategy=strategy, params=params)
    again = services.backtest_create(
        user=backtest.user, spec=spec, start=backtest.start, end=backtest.end, enqueue=False
    )
    assert services.backtest_execute(backtest_id=again.pk) == RunStatus.DONE
    return again


def collect_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def publish_status(backtest: Backtest, **data: Any) -> None:
    event = object_event(
        "backtest",
        "status",
        object_id=backtest.pk,
        owner_id=backtest.user_id,
        data={"status": "running", "progress": 0.0, "error": "", **data},
    )
    assert publish_now(object_groups("backtest", backtest.pk, backtest.user_id), event)


def test_a_finished_backtest_draws_its_charts_without_errors(
    page, browser, server, trader, password
):
    # given the demo backtest: MA Cross 10/30 over the whole sample, 218 trades on 1,000 bars
    backtest = backtest_of(
        trader, run=True, candles=len(sample_file_rows()), params={"fast": 10, "slow": 30}
    )
    assert backtest.trade_count == 218
    errors = collect_errors(page)

    # when the trader opens its page
    log_in(page, trader.email, password)
    page.goto(f"/backtests/{backtest.pk}/")

    # then each chart container holds the library's canvases, at the container's width
    for chart in CHARTS:
        canvas = page.locator(f"{chart} canvas").first
        expect(canvas).to_be_visible()
        box = page.locator(chart).bounding_box()
        assert box is not None
        assert box["width"] > 600
        assert box["height"] > 100
    shown = min(backtest.trade_count, TRADES_PAGE_SIZE)
    expect(page.locator("#backtest-trades tbody tr")).to_have_count(shown)
    # and the report: January and February 2023, the exit reasons, a coloured calendar
    expect(page.locator("#month-table tbody tr")).to_have_count(2)
    expect(page.locator("#exit-reason-table tbody tr[data-reason='signal']")).to_be_visible()
    expect(page.locator("#month-calendar td.month[data-month='2023-01']")).to_be_visible()
    shaded = page.locator("#month-calendar td[data-month='2023-01']").evaluate(
        "(cell) => getComputedStyle(cell).getPropertyValue('--shade')"
    )
    assert shaded.strip() != ""
    # and the strategy's two averages in the legend, over the candles (no pane below for them)
    expect(page.locator("#chart-legend li")).to_have_text(["Fast average", "Slow average"])
    expect(page.locator("#chart-price")).to_have_attribute("data-series", "2")
    expect(page.locator("#chart-indicators")).to_be_hidden()
    assert_markers_readable(page, backtest.trade_count)
    page.wait_for_load_state("networkidle")
    assert errors == []

    # and at a phone's width, the page of an RSI backtest (an oscillator in a pane of its own
    # under the price), the charts shrink to fit and nothing widens the page
    oscillating = same_period(backtest, strategy="rsi_reversion", params={})
    phone = browser.new_context(base_url=server.url, viewport={"width": 375, "height": 740})
    try:
        small = phone.new_page()
        phone_errors = collect_errors(small)
        log_in(small, trader.email, password)
        small.goto(f"/backtests/{oscillating.pk}/")
        expect(small.locator("#chart-indicators")).to_have_attribute("data-series", "4")
        for chart in (*CHARTS, "#chart-indicators"):
            expect(small.locator(f"{chart} canvas").first).to_be_visible()
            box = small.locator(chart).bounding_box()
            assert box is not None
            assert 250 < box["width"] <= 375
        overflow = small.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        assert phone_errors == []
    finally:
        phone.close()


def assert_markers_readable(page: Any, trades: int) -> None:
    """Zoomed out, markers closer than the chart can show apart are drawn as one (every entry
    and exit still counted); zoomed in, they come apart."""
    chart = page.locator("#chart-price")
    chart.scroll_into_view_if_needed()
    expect(chart).to_have_attribute("data-marked", str(2 * trades))
    groups = int(chart.get_attribute("data-marker-groups") or 0)
    drawn = int(chart.get_attribute("data-markers") or 0)
    box = chart.bounding_box()
    assert box is not None
    assert groups > 1
    assert drawn < 2 * trades
    assert drawn <= 4 * box["width"] / 18  # at most 4 kinds per group of 18 pixels
    # when the trader zooms in (the mouse wheel over the chart)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(10):
        page.mouse.wheel(0, -400)
    # then the groups get smaller and more markers are drawn, still counting every trade
    page.wait_for_function(
        f"() => Number(document.getElementById('chart-price').dataset.markerGroups) < {groups}",
        timeout=LIVE,
    )
    expect(chart).to_have_attribute("data-marked", str(2 * trades))


def test_a_running_backtests_progress_bar_follows_the_published_events(page, trader, password):
    # given a running backtest, 10 % done, whose page is open and subscribed
    backtest = backtest_of(trader, run=False)
    Backtest.objects.filter(pk=backtest.pk).update(status=RunStatus.RUNNING, progress=0.1)
    errors = collect_errors(page)
    log_in(page, trader.email, password)
    page.goto(f"/backtests/{backtest.pk}/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=LIVE)
    page.wait_for_function(
        "() => (window.Live.stats.received['backtest.snapshot'] || 0) >= 1", timeout=LIVE
    )
    bar = page.locator("#backtest-progress progress")
    expect(bar).to_have_js_property("value", 0.1)

    # when the worker reports progress, the bar and its percentage move
    publish_status(backtest, progress=0.42)
    expect(bar).to_have_js_property("value", 0.42, timeout=LIVE)
    expect(page.locator("#backtest-progress [data-role='percent']")).to_have_text("42.00 %")
    publish_status(backtest, progress=0.9)
    expect(bar).to_have_js_property("value", 0.9, timeout=LIVE)
    expect(page.locator("h1 + .run-status [data-role='percent']")).to_have_text("90.00 %")

    # when it fails (stored, then published, as the service does), the page reloads to say why
    Backtest.objects.filter(pk=backtest.pk).update(
        status=RunStatus.FAILED, error="The candles of this period are no longer stored."
    )
    publish_status(backtest, status="failed", progress=0.9, error="no candles")
    expect(page.locator("#backtest-error")).to_contain_text(
        "The candles of this period are no longer stored.", timeout=LIVE
    )
    expect(page.locator("#backtest-progress")).to_have_count(0)
    expect(page.locator(".run-status [data-role='status']").first).to_have_text("Failed")
    assert errors == []
