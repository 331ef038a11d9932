"""What a Celery worker publishes reaches a bot page that ANOTHER daphne serves.

Four processes besides Chromium: the test, the session's daphne (``daphne_server``), a second
daphne started here on the same database and Redis, and a real ``celery worker``
(``celery_worker_process``). The trader logs in and opens the bot's page through the second
daphne only. The worker ticks the bot (``send_tick`` to the worker's queue, as beat's
dispatcher sends it), writes the bot's rows and publishes the updates through the channel layer
(Redis) after commit; the page shows them without a reload, on the connection it opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import pytest
from django.template.defaultfilters import floatformat
from playwright.sync_api import expect

from bots import services
from bots.models import Bot, BotEvent, Position, Trade
from bots.services.dispatch import send_tick
from markets.selectors import market_places
from strategies.services import strategy_catalogue_sync
from tests.backtests.worker_helpers import wait_until
from tests.bots.bot_helpers import SYMBOL, paper_account, replay_bot
from tests.bots.worker_ticks_helpers import replay_start, store_replay
from tests.browser.conftest import log_in
from tests.browser.test_live_client import LIVE, indicator, stat, wait_for
from tests.conftest import WorkerProcess, server_env
from tests.daphne_process import Daphne, daphne_running

pytestmark = pytest.mark.browser

WORKER_TIMEOUT = 60.0  # s for the worker to have ticked (the machine is slow and shared)
STANDING_STILL = 0.1  # replay speed, candles a minute: market time stays on one candle


# --- the second daphne, the worker, the bot ----------------------------------------------------


@pytest.fixture(scope="module")
def second_daphne(
    daphne_server: Daphne, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Daphne]:
    """A daphne of this module's own, on the session's test database and Redis."""
    log_path = tmp_path_factory.mktemp("second-daphne") / "daphne.log"
    with daphne_running(env=server_env(), log_path=log_path) as daphne:
        yield daphne


@pytest.fixture
def second_page(browser: Any, second_daphne: Daphne, server: Daphne) -> Iterator[Any]:
    """A page (own cookies) whose relative URLs go to the second daphne."""
    context = browser.new_context(base_url=second_daphne.url)
    context.set_default_timeout(LIVE)
    yield context.new_page()
    context.close()


def socket_urls(page: Any) -> list[str]:
    """The URLs of the WebSockets the page opens from now on (the list fills as it does)."""
    urls: list[str] = []
    page.on("websocket", lambda socket: urls.append(socket.url))
    return urls


def started_bot(trader: Any) -> Bot:
    """The trader's running paper replay bot whose first tick buys; its market time stands
    still (10 minutes a candle), so that the tick decides on the same candle whenever it runs."""
    strategy_catalogue_sync()
    replay = store_replay(replay_start(then=1, candles=1), after=1)
    account = paper_account(trader)
    created = replay_bot(trader, account, start_ms=replay.start_ms, speed=STANDING_STILL)
    return services.bot_start(bot=created.bot)


def open_bot_page(page: Any, trader: Any, password: str, bot: Bot) -> None:
    """Log in and open the bot's page through the page's own server, live and subscribed."""
    log_in(page, trader.email, password)
    page.goto(f"/bots/{bot.pk}/")
    expect(indicator(page)).to_have_attribute("data-state", "live", timeout=LIVE)
    wait_for(page, "(s.received['bot.snapshot'] || 0) >= 1")
    page.evaluate("() => { window.notReloaded = true; }")


def received(page: Any, event_type: str) -> int:
    return int(stat(page, f"received[{event_type!r}] || 0"))


def worker_event(bot: Bot, kind: str) -> BotEvent:
    """The bot's ``kind`` event, once the worker has written it."""
    return wait_until(
        lambda: BotEvent.objects.filter(bot=bot, kind=kind).first(),
        timeout=WORKER_TIMEOUT,
        what=f"the worker to write bot {bot.pk}'s {kind!r} event",
        interval=0.2,
    )


def worker_log_mark(worker: WorkerProcess) -> int:
    return worker.log_path.stat().st_size


def worker_ticked(worker: WorkerProcess, bot: Bot, since: int, action: str) -> str:
    """The worker's ``bot.tick`` log line for its tick of ``bot`` (written after ``since``)."""

    wanted = {"message": "bot.tick", "action": action, "bot_id": bot.pk}

    def fields(text: str) -> dict[str, Any]:
        """A line's fields, in either log format (``LOG_FORMAT`` text or json)."""
        if text.startswith("{"):
            return dict(json.loads(text))
        words = text.split(" ")
        pairs = dict(word.split("=", 1) for word in words if "=" in word)
        return {**pairs, "message": words[3] if len(words) > 3 else ""}

    def line() -> str | None:
        with worker.log_path.open("rb") as log:
            log.seek(since)
            lines = log.read().decode(errors="replace").splitlines()
        for text in lines:
            found = fields(text)
            if all(str(found.get(key)) == str(value) for key, value in wanted.items()):
                return text
        return None

    return wait_until(line, timeout=WORKER_TIMEOUT, what=f"the worker's tick of bot {bot.pk}")


def event_row(page: Any, event: BotEvent) -> Any:
    return page.locator(f"#bot-events tbody tr[data-event-id='{event.pk}']")


def event_cells(event: BotEvent) -> list[str]:
    """The row's cells as the template draws them (times in the trader's zone, UTC here)."""
    when = event.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return [when, event.level, event.kind, event.message]


# --- the tests --------------------------------------------------------------------------------


def test_a_tick_run_by_a_worker_shows_on_the_bot_page_of_another_daphne(
    browser, server, second_daphne, second_page, worker, trader, password
):
    # given the trader's running bot, its page open through the second daphne, live and
    # subscribed, showing the bot's start and nothing yet from a tick
    bot = started_bot(trader)
    page = second_page
    sockets = socket_urls(page)
    open_bot_page(page, trader, password, bot)
    expect(page.locator("#bot-status")).to_have_text("Running")
    started = BotEvent.objects.get(bot=bot, kind="started")
    expect(page.locator("#bot-events tbody tr")).to_have_count(1)
    expect(event_row(page, started)).to_have_count(1)
    qty_cell = page.locator("#bot-position td.position-qty")
    places = market_places(exchange=bot.exchange_account.exchange, symbol=SYMBOL)
    expect(qty_cell).to_have_text(f"{floatformat(0, places.qty)} {SYMBOL}")
    assert [received(page, t) for t in ("bot.event", "bot.candle", "bot.position")] == [0, 0, 0]
    # and the trader's page on the session's daphne too
    watcher = browser.new_context(base_url=server.url)
    watcher.set_default_timeout(LIVE)
    other_page = watcher.new_page()
    try:
        open_bot_page(other_page, trader, password, bot)
        # and four different processes: the test, the worker and the two daphnes
        pids = {
            os.getpid(), worker.process.pid, server.process.pid, second_daphne.process.pid,
        }  # fmt: skip
        assert len(pids) == 4
        assert worker.process.poll() is None
        # and the page's WebSockets (the dashboard's, then this one) go to the second daphne
        assert set(sockets) == {f"ws://127.0.0.1:{second_daphne.port}/ws/"}

        # when the worker ticks the bot
        mark = worker_log_mark(worker)
        send_tick(bot.pk)

        # then the event the worker wrote for its tick shows at the top of the bot's log,
        # drawn as the server draws it, without a reload
        tick = worker_event(bot, "tick")
        row = event_row(page, tick)
        expect(row.locator("td")).to_have_text(event_cells(tick), timeout=LIVE)
        expect(page.locator("#bot-events tbody tr").first).to_have_attribute(
            "data-event-id", str(tick.pk)
        )
        expect(event_row(page, started)).to_have_count(1)
        wait_for(page, "(s.received['bot.event'] || 0) >= 1")
        assert received(page, "bot.event") >= 1
        # and so do the position the tick bought and its trade
        position = Position.objects.get(bot=bot, symbol=SYMBOL)
        assert position.qty > 0
        shown = floatformat(position.qty, places.qty)
        expect(qty_cell).to_have_text(f"{shown} {SYMBOL}", timeout=LIVE)
        trade = Trade.objects.get(bot=bot)
        expect(page.locator("#bot-trades tbody tr[data-trade-key]")).to_have_count(1)
        expect(page.locator("#bot-trades tbody tr td").nth(1)).to_have_text(trade.side)
        assert received(page, "bot.candle") >= 1
        assert received(page, "bot.position") >= 1
        # on the connection the page opened, to the second daphne
        assert page.evaluate("() => window.notReloaded") is True
        assert (stat(page, "connections"), received(page, "bot.snapshot")) == (1, 1)
        assert set(sockets) == {f"ws://127.0.0.1:{second_daphne.port}/ws/"}
        # and the page on the session's daphne shows the same event
        expect(event_row(other_page, tick).locator("td")).to_have_text(
            event_cells(tick), timeout=LIVE
        )
        # and it was the worker that ran the tick (and bought)
        assert worker_ticked(worker, bot, mark, "traded")
    finally:
        watcher.close()


def test_a_stop_the_worker_carries_out_shows_on_the_bot_page_of_another_daphne(
    second_daphne, second_page, worker, trader, password
):
    # given the trader's bot, running, then told to stop by the kill switch (which leaves the
    # stop to the bot's next tick, run by a worker)
    bot = started_bot(trader)
    assert services.bots_kill(user=trader) == 1
    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPING
    # and its page open through the second daphne, live and subscribed, showing it stopping
    page = second_page
    sockets = socket_urls(page)
    open_bot_page(page, trader, password, bot)
    status = page.locator("#bot-status")
    expect(status).to_have_text("Stopping")
    expect(page.locator("#bot-stop button")).to_be_enabled()
    assert received(page, "bot.status") == received(page, "bot.event") == 0

    # when the worker ticks the bot
    mark = worker_log_mark(worker)
    send_tick(bot.pk)

    # then the page shows the bot stopped, from the status the worker published
    expect(status).to_have_text("Stopped", timeout=LIVE)
    expect(status).to_have_class("badge stopped")
    expect(page.locator("#bot-stop button")).to_be_disabled()
    bot.refresh_from_db()
    assert bot.status == Bot.Status.STOPPED
    # and the event the worker wrote for the stop, at the top of the bot's log
    stopped = worker_event(bot, "stopped")
    expect(event_row(page, stopped).locator("td")).to_have_text(event_cells(stopped), timeout=LIVE)
    expect(page.locator("#bot-events tbody tr").first).to_have_attribute(
        "data-event-id", str(stopped.pk)
    )
    wait_for(page, "(s.received['bot.status'] || 0) >= 1 && (s.received['bot.event'] || 0) >= 1")
    # without a reload, on the one connection, to the second daphne
    assert page.evaluate("() => window.notReloaded") is True
    assert (stat(page, "connections"), received(page, "bot.snapshot")) == (1, 1)
    assert set(sockets) == {f"ws://127.0.0.1:{second_daphne.port}/ws/"}
    # and it was the worker, a process of its own, that carried the stop out
    assert worker_ticked(worker, bot, mark, "stopped")
    assert worker.process.pid not in {os.getpid(), second_daphne.process.pid}
