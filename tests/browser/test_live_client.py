"""The pages' live-updates client (static/js/live.js) and the bot page's use of it
(static/js/bot_detail.js), in a real Chromium against a real daphne.

Events are published from the test process through the channel layer (the same Redis as the
server), as a bot's tick publishes them. Tests that stop the server run their own daphne on a
port of their own, and start it again on the same port. ``Live.stats`` counts what the client
did (attempts, connections, pings, pongs, messages per type), so the tests wait on counters and
states, never on durations.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from bots import services as bot_services
from bots.models import Order, Position
from bots.services.lifecycle import BotConfig
from markets.models import Candle
from markets.perp_data import PERP_SAMPLE_SYMBOL, perp_sample_load
from strategies.services import strategy_catalogue_sync
from tests.bots.bot_helpers import (
    COUNT,
    FIRST,
    SPEED,
    as_datetime,
    holding_bot,
    paper_account,
    replay_bot,
    store_candles,
)
from tests.browser.conftest import log_in
from tests.conftest import server_env
from tests.daphne_process import Daphne, daphne_running
from tradingbot.events import object_event, object_groups, publish_now

pytestmark = pytest.mark.browser

LIVE = 30_000  # ms a page may take to reach a state (the machine is slow and shared)
BOOK_SECTIONS = ("#bot-summary", "#bot-position", "#bot-open-orders", "#bot-trades", "#bot-events")


# --- a daphne of the test's own, to stop and start again -----------------------------------------


@pytest.fixture
def own_daphne(server: Any, tmp_path: Path) -> Iterator[Daphne]:
    """A daphne on a port of its own, on the test database, that a test may kill and start."""
    with daphne_running(env=server_env(), log_path=tmp_path / "daphne.log") as daphne:
        yield daphne


@pytest.fixture
def own_page(browser: Any, own_daphne: Daphne) -> Iterator[Any]:
    context = browser.new_context(base_url=own_daphne.url)
    context.set_default_timeout(LIVE)
    yield context.new_page()
    context.close()


# --- bots, events and the page's counters -------------------------------------------------------


@pytest.fixture
def bot(trader: Any) -> Any:
    """A stopped replay bot of the trader's, with no books yet."""
    strategy_catalogue_sync()
    rows = store_candles(0, 30)
    account = paper_account(trader)
    return replay_bot(trader, account, start_ms=rows[0].open_time, name="Live bot").bot


def publish(bot: Any, what: str, data: dict[str, Any]) -> None:
    event = object_event("bot", what, object_id=bot.pk, owner_id=bot.user_id, data=data)
    assert publish_now(object_groups("bot", bot.pk, bot.user_id), event)


def epoch_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def stat(page: Any, expression: str) -> Any:
    return page.evaluate(f"() => window.Live.stats.{expression}")


def snapshots(page: Any) -> int:
    return int(stat(page, "received['bot.snapshot'] || 0"))


def wait_for(page: Any, expression: str) -> None:
    """Until ``expression`` (over ``Live.stats`` as ``s``) holds in the page."""
    page.wait_for_function(f"() => {{ const s = window.Live.stats; return {expression}; }}")


def indicator(page: Any) -> Any:
    return page.locator("header.topbar #live-status")


def open_bot_page(page: Any, trader: Any, password: str, bot: Any) -> None:
    log_in(page, trader.email, password)
    page.goto(f"/bots/{bot.pk}/")
    expect(indicator(page)).to_have_attribute("data-state", "live", timeout=LIVE)
    wait_for(page, "(s.received['bot.snapshot'] || 0) >= 1")


def books(page: Any) -> dict[str, str]:
    return {selector: page.locator(selector).inner_text() for selector in BOOK_SECTIONS}


# --- the indicator ------------------------------------------------------------------------------


def test_a_signed_in_page_shows_the_connection_going_live(logged_in_page):
    # given a trader who has just logged in; when their dashboard loads
    page = logged_in_page

    # then the top bar's indicator reaches "live", as a status the page announces
    status = page.get_by_role("status")
    expect(status).to_have_attribute("data-state", "live", timeout=LIVE)
    expect(status).to_have_text("Live")
    expect(status).to_have_attribute("id", "live-status")
    # on one connection, made at the first attempt
    assert stat(page, "attempts") == 1
    assert stat(page, "connections") == 1
    assert stat(page, "received['auth.ok']") == 1


def test_an_anonymous_page_opens_no_live_connection(page):
    # given a visitor who is not logged in, watching for WebSockets
    sockets: list[Any] = []
    page.on("websocket", lambda socket: sockets.append(socket))

    # when they open the login page and it settles
    page.goto("/accounts/login/")
    page.wait_for_load_state("networkidle")

    # then the page has neither the client nor the indicator, and opened no socket
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert page.evaluate("() => typeof window.Live") == "undefined"
    expect(page.locator("script[src$='/live.js']")).to_have_count(0)
    expect(page.locator("#live-status")).to_have_count(0)
    assert sockets == []


# --- events reach the bot's page ----------------------------------------------------------------


def test_published_events_update_the_bot_page_without_a_reload(page, trader, password, bot):
    # given the trader's stopped bot's page, subscribed (its first snapshot arrived)
    open_bot_page(page, trader, password, bot)
    expect(page.locator("#bot-status")).to_have_text("Stopped")
    expect(page.locator("#bot-events tbody tr")).to_have_count(0)
    page.evaluate("() => { window.notReloaded = true; }")

    # when the bot's tick publishes a status change, an event of its log, a trade and a position
    publish(bot, "status", {"status": "running", "last_error": ""})
    publish(bot, "event", {"id": 987654, "time": epoch_ms("2024-03-01T12:34:56"), "level": "info",
                           "kind": "order.placed", "message": "bought <b>0.5</b> BTC",
                           "data": {}})  # fmt: skip
    publish(bot, "trade", {"side": "buy", "qty": "0.5", "price": "30000.125", "fee": "0.01505",
                           "pnl": "0", "time": epoch_ms("2024-03-01T12:34:00")})  # fmt: skip
    publish(bot, "position", {"symbol": "BTC/USDT", "qty": "0.5", "entry_price": "30000.125",
                              "pnl": "-1.005", "unrealized_pnl": "12.3449",
                              "mark_price": "30100"})  # fmt: skip

    # then the page shows each of them, drawn as the server draws its rows, in place
    status = page.locator("#bot-status")
    expect(status).to_have_text("Running", timeout=LIVE)
    expect(status).to_have_class("badge running")
    expect(page.locator("#bot-start button")).to_be_disabled()  # a running bot is not started
    event_cells = page.locator("#bot-events tbody tr").first.locator("td")
    expect(event_cells).to_have_text(
        ["2024-03-01 12:34:56", "info", "order.placed", "bought <b>0.5</b> BTC"], timeout=LIVE
    )
    expect(page.locator("#bot-events").get_by_text("No events yet.")).to_be_hidden()
    trade_cells = page.locator("#bot-trades tbody tr").first.locator("td")
    expect(trade_cells).to_have_text(
        ["2024-03-01 12:34", "buy", "0.500000", "30000.13", "0.0151", "0.00"], timeout=LIVE
    )
    position_cells = page.locator("#bot-position tbody td")
    expect(position_cells).to_have_text(
        ["0.500000 BTC/USDT", "30000.13", "30100.00", "-1.01", "12.34"], timeout=LIVE
    )
    expect(page.locator("#bot-position").get_by_text("No position.")).to_be_hidden()
    assert page.evaluate("() => window.notReloaded") is True

    # and when an order is placed, it shows among the open orders until it is filled
    order = {"client_order_id": f"tb{bot.pk}-live-1", "side": "sell", "order_type": "limit",
             "price": "31000.5", "qty": "0.25", "filled_qty": "0", "average_price": None,
             "status": "open", "reason": "signal"}  # fmt: skip
    publish(bot, "order", order)
    order_id = f"tb{bot.pk}-live-1"
    order_cells = page.locator(f"#bot-open-orders tr[data-order-id='{order_id}'] td")
    expect(order_cells).to_have_text(
        ["—", "sell", "limit", "31000.50", "0.250000", "0.000000", "open", "signal", order_id],
        timeout=LIVE,
    )
    publish(bot, "order", {**order, "filled_qty": "0.25", "status": "closed"})
    expect(order_cells).to_have_count(0, timeout=LIVE)
    expect(page.locator("#bot-open-orders").get_by_text("No open orders.")).to_be_visible()

    # and when the bot then fails, the status and its error show
    publish(bot, "status", {"status": "error", "last_error": "exchange said no"})
    expect(status).to_have_text("Error", timeout=LIVE)
    expect(page.locator("#bot-error")).to_have_text("exchange said no")
    expect(page.locator("#bot-error")).to_be_visible()
    expect(page.locator("#bot-start button")).to_be_enabled()


def test_a_failing_handler_does_not_stop_the_others(page, trader, password, bot):
    # given the bot's page, with a handler that throws and others registered after it
    open_bot_page(page, trader, password, bot)
    page.evaluate("""() => {
        window.seen = [];
        Live.on("bot.event", () => { throw new Error("a broken handler"); });
        Live.on("bot.event", (message) => window.seen.push(message.data.id));
        Live.on("*", (message) => window.seen.push(message.type));
    }""")

    # when an event arrives
    with page.expect_event("pageerror", timeout=LIVE) as reported:
        publish(bot, "event", {"id": 4242, "time": epoch_ms("2024-03-01T00:00:00"),
                               "level": "info", "kind": "note", "message": "still here",
                               "data": {}})  # fmt: skip

    # then the error is reported as an uncaught one would be, and yet the page's own handler,
    # the next one and the catch-all all ran, on the same connection
    assert "a broken handler" in str(reported.value)
    expect(page.locator("#bot-events tbody tr").first).to_contain_text("still here", timeout=LIVE)
    page.wait_for_function("() => window.seen.length >= 2")
    assert page.evaluate("() => window.seen") == [4242, "bot.event"]
    assert stat(page, "handlerErrors") == 1
    assert stat(page, "connections") == 1


def test_the_snapshot_draws_the_books_as_the_server_does(browser, server, trader, password):
    # given a bot that has traded, holds a position, logged events and has an open order
    strategy_catalogue_sync()
    rows = store_candles(FIRST, COUNT)
    runner = holding_bot(trader, paper_account(trader), rows, "holder")
    bot = runner.bot
    Order.objects.create(
        bot=bot, client_order_id=f"tb{bot.pk}-resting-buy", symbol=bot.symbol, side="buy",
        order_type="limit", price="12345.675", qty="0.25", status="open", reason="signal",
        candle_ms=rows[0].open_time,
    )  # fmt: skip
    # and the page as the server draws it, without any script
    static_context = browser.new_context(base_url=server.url, java_script_enabled=False)
    static_page = static_context.new_page()
    log_in(static_page, trader.email, password)
    static_page.goto(f"/bots/{bot.pk}/")
    drawn_by_server = books(static_page)
    static_context.close()

    # when the page opens with its scripts and its snapshot redraws the books
    live_context = browser.new_context(base_url=server.url)
    live_context.set_default_timeout(LIVE)
    page = live_context.new_page()
    try:
        open_bot_page(page, trader, password, bot)

        # then it reads exactly as the server's page, from rows the script drew
        assert books(page) == drawn_by_server
        assert page.locator("#bot-trades tbody tr[data-trade-key]").count() > 0
        assert page.locator("#bot-trades tbody tr:not([data-trade-key])").count() == 0
        assert "12345.68" in drawn_by_server["#bot-open-orders"]
    finally:
        live_context.close()


# --- reconnecting -------------------------------------------------------------------------------


def test_it_reconnects_after_the_server_dies_and_resubscribes(
    own_page, own_daphne, trader, password, bot
):
    # given the bot's page, live on its own server, retrying at most 2 s apart
    page = own_page
    open_bot_page(page, trader, password, bot)
    assert snapshots(page) == 1
    page.evaluate("() => Live.configure({backoffCapMs: 2000})")
    status = indicator(page)

    # when the server dies
    own_daphne.kill()

    # then the indicator says the page is reconnecting, with the next attempt's time
    expect(status).to_have_attribute("data-state", "reconnecting", timeout=LIVE)
    expect(status).to_have_text(re.compile(r"^Reconnecting in \d+ s$"), timeout=LIVE)
    expect(status).to_have_attribute("data-retry-at", re.compile(r"^\d+$"), timeout=LIVE)
    wait_for(page, "s.attempts >= 3")  # it keeps trying while the server is down
    assert stat(page, "connections") == 1

    # when a new server comes up on the same port
    own_daphne.start()

    # then the page is live again on a second connection, and resubscribed: a fresh snapshot came
    expect(status).to_have_attribute("data-state", "live", timeout=LIVE)
    expect(status).to_have_text("Live")
    wait_for(page, "(s.received['bot.snapshot'] || 0) >= 2")
    assert stat(page, "connections") == 2
    assert snapshots(page) == 2
    # and events reach the page through the new connection
    publish(bot, "status", {"status": "running", "last_error": ""})
    expect(page.locator("#bot-status")).to_have_text("Running", timeout=LIVE)


def test_pings_are_answered_and_the_server_logs_nothing_for_them(
    own_page, own_daphne, trader, password
):
    # given a live page on its own server
    page = own_page
    log_in(page, trader.email, password)
    expect(indicator(page)).to_have_attribute("data-state", "live", timeout=LIVE)
    page.wait_for_load_state("networkidle")
    mark = own_daphne.log_mark()

    # when it pings every 100 ms
    page.evaluate("() => Live.configure({pingMs: 100})")

    # then the server answers each with a pong, on the same connection
    wait_for(page, "s.pongs >= 10")
    assert stat(page, "pings") >= stat(page, "pongs") >= 10
    assert stat(page, "received.pong") == stat(page, "pongs")
    assert (stat(page, "attempts"), stat(page, "connections")) == (1, 1)
    # and writes no line for any of them
    assert own_daphne.log_since(mark) == ""
    # the connection's one log line, at close, counts them
    page.context.close()
    deadline = time.monotonic() + 60
    while " ws.closed " not in (text := own_daphne.log_since(mark)):
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    closed = [line for line in text.splitlines() if " ws.closed " in line]
    assert len(closed) == 1, text
    received = int(re.search(r"\breceived=(\d+)", closed[0]).group(1))  # type: ignore[union-attr]
    assert received >= 10


# --- a signed-out connection --------------------------------------------------------------------


def test_a_signed_out_page_goes_offline_without_retrying(page, trader, password):
    # given a live page, with a client that would retry within 100 ms and ping at once, so that
    # a retry loop would show many attempts
    log_in(page, trader.email, password)
    expect(indicator(page)).to_have_attribute("data-state", "live", timeout=LIVE)
    page.evaluate("() => Live.configure({backoffBaseMs: 50, backoffCapMs: 100, pingMs: 100})")

    # when the user logs out (the same browser, the page left open)
    page.evaluate("""() => fetch("/accounts/logout/", {
        method: "POST", body: new FormData(document.querySelector("form.logout")),
    })""")

    # then the server closes this session's socket and the page shows it offline
    status = indicator(page)
    expect(status).to_have_attribute("data-state", "offline", timeout=LIVE)
    expect(status).to_have_text("Offline")
    expect(status).to_have_attribute("title", re.compile("signed out"))
    assert stat(page, "lastClose.code") == 4401
    assert stat(page, "received.error") == 1
    # and it does not try again by itself
    page.wait_for_timeout(2_000)
    assert (stat(page, "attempts"), stat(page, "connections")) == (1, 1)

    # when it connects once more (as when the tab becomes visible again), the server refuses it
    page.evaluate("() => Live.reconnect()")
    expect(status).to_have_attribute("data-state", "offline", timeout=LIVE)
    page.wait_for_function("() => Live.stats.received.error === 2", timeout=LIVE)
    assert stat(page, "lastClose.code") == 4401
    page.wait_for_timeout(2_000)
    assert (stat(page, "attempts"), stat(page, "connections")) == (2, 1)
    expect(status).to_have_attribute("data-state", "offline")


# --- a perpetual-swap bot ------------------------------------------------------------------------


@pytest.fixture
def perp_bot(trader: Any) -> Any:
    """A stopped replay bot of the trader's on the shipped XRP/USDT:USDT perp sample, at 3x."""
    strategy_catalogue_sync()
    perp_sample_load()
    first = Candle.objects.filter(symbol=PERP_SAMPLE_SYMBOL, timeframe="5m").order_by("open_time")
    config = BotConfig(
        name="Perp bot", exchange_account=paper_account(trader), symbol=PERP_SAMPLE_SYMBOL,
        timeframe="5m", strategy="ma_cross", params={"fast": 5, "slow": 20, "allow_short": True},
        data_source="replay", replay_start=as_datetime(first[300].open_time), replay_speed=60,
        leverage=3,
    )  # fmt: skip
    return bot_services.bot_create(user=trader, config=config)


def test_a_perp_bots_page_shows_the_short_its_leverage_and_liquidation_line(
    page, trader, password, perp_bot
):
    # given the perp bot's page: its leverage in the configuration, the perp columns, flat
    open_bot_page(page, trader, password, perp_bot)
    expect(page.locator("#bot-leverage td")).to_contain_text("3×")
    chart = page.locator("#bot-chart")
    expect(chart).to_have_attribute("data-liquidation", "")

    # when the tick publishes a short position
    publish(perp_bot, "position", {
        "symbol": PERP_SAMPLE_SYMBOL, "side": "short", "qty": "1200", "entry_price": "1.1893",
        "pnl": "-0.5", "unrealized_pnl": "3.25", "mark_price": "1.1866", "leverage": 3,
        "margin": "475.72", "liquidation_price": "1.5779", "funding": "-0.0125",
    })  # fmt: skip

    # then the position's side, leverage, liquidation price and funding show, and the chart
    # draws the liquidation line at its price
    cells = page.locator("#bot-position tbody td")
    expect(cells).to_have_text(
        ["short", "1200 XRP/USDT:USDT", "1.1893", "1.1866", "3×", "1.5779", "-0.01",
         "-0.50", "3.25"],
        timeout=LIVE,
    )  # fmt: skip
    expect(chart).to_have_attribute("data-liquidation", "1.5779", timeout=LIVE)

    # and when it is closed, the line goes
    publish(perp_bot, "position", {
        "symbol": PERP_SAMPLE_SYMBOL, "side": "short", "qty": "0", "entry_price": None,
        "pnl": "2.75", "unrealized_pnl": "0", "mark_price": "1.1866", "leverage": 3,
        "margin": "0", "liquidation_price": None, "funding": "-0.0125",
    })  # fmt: skip
    expect(page.locator("#bot-position td.position-side")).to_have_text("flat", timeout=LIVE)
    expect(chart).to_have_attribute("data-liquidation", "", timeout=LIVE)


# --- the bot page: its settings, its clock live, and closing its position ----------------------


@pytest.fixture
def tokyo_page(browser: Any, server: Any) -> Iterator[Any]:
    """A page in a browser set to Tokyo: the login takes the browser's time zone."""
    context = browser.new_context(base_url=server.url, timezone_id="Asia/Tokyo")
    context.set_default_timeout(LIVE)
    yield context.new_page()
    context.close()


def held_qty(bot: Any) -> Decimal:
    return Position.objects.get(bot=bot, symbol=bot.symbol).qty


def test_the_bot_page_shows_its_settings_ticks_live_and_closes_the_position(
    tokyo_page, trader, password
):
    # given a running replay bot with every risk setting, holding BTC
    strategy_catalogue_sync()
    rows = store_candles(FIRST, COUNT)
    runner = replay_bot(
        trader, paper_account(trader, label="Paper Tokyo"), start_ms=rows[0].open_time,
        speed=SPEED, name="Settings bot", params={"fast": 5, "slow": 20},
        stop_loss_pct=Decimal("40"), take_profit_pct=Decimal("900"),
        max_position=Decimal("50000"), daily_loss_limit=Decimal("5000"),
    )  # fmt: skip
    runner.clock.now = time.time()
    runner.start()
    for _ in range(400):
        runner.next_candle()
        if held_qty(runner.bot) > 0:
            break
    bot = runner.refresh()
    assert held_qty(bot) > 0, bot.last_error
    page = tokyo_page
    tokyo = ZoneInfo("Asia/Tokyo")

    # when the trader (in Tokyo) opens its page
    open_bot_page(page, trader, password, bot)
    page.evaluate("() => { window.notReloaded = true; }")

    # then every setting is on it, worded for a trader
    expect(page.locator("#setting-market")).to_contain_text("BTC/USDT 5m (spot)")
    expect(page.locator("#setting-account")).to_contain_text("Paper Tokyo")
    expect(page.locator("#setting-strategy")).to_contain_text("Moving-average crossover")
    expect(page.locator("#setting-strategy dt")).to_contain_text(
        ["Fast moving-average length, in candles", "Slow moving-average length, in candles",
         "Kind of moving average"]
    )  # fmt: skip
    start = datetime.fromtimestamp(rows[0].open_time / 1000, tz=tokyo)
    expect(page.locator("#setting-replay-start")).to_have_text(f"{start:%Y-%m-%d %H:%M}")
    expect(page.locator("#setting-stop-loss")).to_contain_text("40 % below the entry")
    expect(page.locator("#setting-take-profit")).to_contain_text("900 % above the entry")
    expect(page.locator("#setting-max-position")).to_contain_text("50000 USDT")
    expect(page.locator("#setting-daily-loss-limit")).to_contain_text("5000 USDT")
    expect(page.locator("#setting-order-size")).to_contain_text("100 % of the free USDT balance")

    # and its fills are markers on the chart, grouped so that 218 trades stay readable: at most
    # two markers (a buy, a sell) a group of candles, the dense ones without text
    chart = page.locator("#bot-chart")
    assert int(chart.get_attribute("data-markers") or 0) >= 1
    assert int(chart.get_attribute("data-marker-groups") or 0) >= 1
    dense = page.evaluate("""() => {
        const fills = Array.from({length: 218}, (_, i) =>
            ({time: i * 300, side: i % 2 ? "sell" : "buy", price: 100 + i}));
        const per = ChartMarkers.barsPerGroup(218);
        const options = {barSeconds: 300, barsPerGroup: per, places: 2};
        return {per, max: ChartMarkers.MAX_GROUPS, markers: ChartMarkers.group(fills, options)};
    }""")
    markers = dense["markers"]
    assert dense["per"] > 1
    assert len(markers) <= 2 * dense["max"]
    assert all(m["text"] == "" for m in markers)
    assert [m["time"] for m in markers] == sorted(m["time"] for m in markers)
    assert len({(m["time"], m["position"]) for m in markers}) == len(markers)

    # and the strategy's two averages are drawn over the candles, up to the bot's last candle
    assert chart.get_attribute("data-indicators") == "2"
    expect(page.locator("#bot-chart-legend li")).to_have_text(["Fast average", "Slow average"])
    assert chart.get_attribute("data-indicators-until") == str(bot.last_candle_ms)

    # and when the bot ticks (its tick publishes through the channel layer, as a worker's does)
    before = page.locator("#bot-last-tick").inner_text()
    events_before = int(stat(page, "received['bot.event'] || 0"))
    runner.next_candle()
    bot.refresh_from_db()
    ticked = bot.last_tick_at.astimezone(tokyo)
    candle = datetime.fromtimestamp(bot.last_candle_ms / 1000, tz=tokyo)

    # then "Last tick" and "Last candle" follow it without a reload, in Tokyo time, and so does
    # the candle time of the tick's log line
    expect(page.locator("#bot-last-tick")).to_have_text(f"{ticked:%Y-%m-%d %H:%M:%S}")
    assert page.locator("#bot-last-tick").inner_text() != before
    expect(page.locator("#bot-last-candle")).to_have_text(f"{candle:%Y-%m-%d %H:%M}")
    wait_for(page, f"(s.received['bot.event'] || 0) > {events_before}")
    expect(page.locator("#bot-events tbody tr").first.locator("td").nth(3)).to_contain_text(
        f"Candle {candle:%Y-%m-%d %H:%M}: signal"
    )
    # and the averages move on to the new candle (read again from the chart API)
    expect(chart).to_have_attribute("data-indicators-until", str(bot.last_candle_ms))
    assert page.evaluate("() => window.notReloaded") is True

    # and when the trader closes the position, through its confirmation
    held = held_qty(bot)
    page.click("#bot-close-position a")
    expect(page.locator("#bot-close-confirm")).to_be_visible()
    expect(page.locator("#confirm-order")).to_contain_text("sell")
    expect(page.locator("#confirm-afterwards")).to_contain_text("keeps running")
    assert held_qty(bot) == held  # asking is not closing
    page.click("#bot-close-position-form button[type=submit]")

    # then the bot's page says so, flat, the bot still running
    expect(page).to_have_url(re.compile(rf"/bots/{bot.pk}/$"))
    expect(page.locator(".messages")).to_contain_text("Position closed: sell")
    expect(page.locator("#bot-position .position-qty")).to_have_text("0.000000 BTC/USDT")
    expect(page.locator("#bot-close-position")).to_be_hidden()
    expect(page.locator("#bot-status")).to_have_text("Running")
    closing = Order.objects.get(bot=bot, reason="close")
    assert (closing.status, closing.qty, closing.order_type) == ("closed", held, "market")
    assert held_qty(bot) == 0
