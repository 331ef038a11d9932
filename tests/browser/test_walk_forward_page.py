"""A walk-forward's page in a real Chromium against a real daphne: while it runs, its counts
follow the ``walk_forward.status`` events published through the channel layer and the page
reloads itself on the final status; once done, it draws the stitched out-of-sample equity
(Lightweight Charts canvases, every point, no JavaScript error)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from backtests.models import RunStatus, WalkForward
from backtests.services import candle_cache
from strategies.services import strategy_catalogue_sync
from tests.backtests.conftest import EXCHANGE, SYMBOL, TIMEFRAME, SampleMarket
from tests.backtests.walk_forward_helpers import create_walk_forward, run_walk_forward
from tests.browser.conftest import log_in
from tests.browser.test_backtest_pages import LIVE, collect_errors, store_sample
from tradingbot.events import object_event, object_groups, publish_now

pytestmark = pytest.mark.browser


def publish_status(walk_forward: WalkForward, **data: Any) -> None:
    event = object_event(
        "walk_forward",
        "status",
        object_id=walk_forward.pk,
        owner_id=walk_forward.user_id,
        data={
            "status": "running", "progress": 0.0, "windows_done": 0, "windows": 4,
            "trials_finished": 0, "trials": 12, "error": "", **data,
        },
    )  # fmt: skip
    assert publish_now(object_groups("walk_forward", walk_forward.pk, walk_forward.user_id), event)


def test_a_walk_forwards_page_follows_its_progress_then_draws_its_equity(
    page, trader, password, settings
):
    # given the sample's first 4,000 candles and a queued walk-forward of 4 windows
    settings.BACKTESTS_QUEUE = "test-walk-forward-page"  # nobody takes its messages
    strategy_catalogue_sync()
    candle_cache.forget()
    start, end = store_sample(4000)
    market = SampleMarket(EXCHANGE, SYMBOL, TIMEFRAME, start, end, 4000)
    walk_forward = create_walk_forward(trader, market)
    errors = collect_errors(page)
    log_in(page, trader.email, password)
    page.goto(f"/walk-forwards/{walk_forward.pk}/")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live", timeout=LIVE)
    page.wait_for_function(
        "() => (window.Live.stats.received['walk_forward.snapshot'] || 0) >= 1", timeout=LIVE
    )
    counts = page.locator("#walk-forward-counts")
    expect(counts).to_have_text("0 of 4 windows done, 0 of 12 trials finished")

    # when the workers report progress, the counts and the bar move
    publish_status(walk_forward, progress=0.5, trials_finished=10, windows_done=2)
    expect(counts).to_have_text("2 of 4 windows done, 10 of 12 trials finished", timeout=LIVE)
    bar = page.locator("#walk-forward-progress progress")
    expect(bar).to_have_js_property("value", 0.5)

    # when it is done (stored, then published, as the service does), the page reloads with the
    # stitched equity drawn, every point of it
    done = run_walk_forward(walk_forward)
    assert done.status == RunStatus.DONE
    publish_status(done, status="done", progress=1.0, windows_done=4, trials_finished=12)
    chart = page.locator("#walk-forward-equity")
    expect(chart.locator("canvas").first).to_be_visible(timeout=LIVE)
    expect(chart).to_have_attribute("data-points", str(len(done.equity)))
    expect(page.locator("#walk-forward-windows tbody tr[data-status='done']")).to_have_count(4)
    expect(page.locator("#walk-forward-progress")).to_have_count(0)
    page.wait_for_load_state("networkidle")
    assert errors == []
