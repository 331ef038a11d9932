"""The trader's bot pages: the list of their bots and one bot's page (status, position, open
orders, trades, events) with the Start and Stop forms."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.template.defaultfilters import floatformat
from django.test import Client
from django.utils import timezone

from bots.models import Bot, Order, Position
from markets.selectors import market_places
from tests.admin_helpers import shown_messages
from tests.bots.bot_helpers import SPEED, holding_bot, paper_account, replay_bot


def stopped_bot(user: Any, rows: list[Any], name: str = "pager") -> Bot:
    return replay_bot(user, paper_account(user, label=name), start_ms=rows[0].open_time,
                      speed=SPEED, name=name).bot  # fmt: skip


def status_of(bot: Bot) -> str:
    return Bot.objects.get(pk=bot.pk).status


def test_the_pages_need_a_login(client, user, rows):
    bot = stopped_bot(user, rows)
    for url in ("/bots/", f"/bots/{bot.pk}/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert client.post(f"/bots/{bot.pk}/start/").status_code == 302
    assert status_of(bot) == "stopped"


def test_the_list_shows_the_traders_bots_with_status_and_pnl(trader_client, user, other_user, rows):
    mine = holding_bot(user, paper_account(user), rows, "my holder").bot
    idle = stopped_bot(user, rows, "my idle bot")
    theirs = stopped_bot(other_user, rows, "their bot")
    position = Position.objects.get(bot=mine)

    response = trader_client.get("/bots/")

    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="/bots/{mine.pk}/"' in html
    assert f'href="/bots/{idle.pk}/"' in html
    assert theirs.name not in html
    assert f"/bots/{theirs.pk}/" not in html
    assert 'class="badge running bot-status">Running</span>' in html
    assert 'class="badge stopped bot-status">Stopped</span>' in html
    assert f'<td class="realised-pnl">{floatformat(position.pnl, 2)}</td>' in html
    assert f'<td class="unrealised-pnl">{floatformat(position.unrealized_pnl, 2)}</td>' in html
    assert 'href="/bots/"' in html  # the navigation links to the page


def test_the_page_shows_the_bots_books(trader_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "holder").bot
    position = Position.objects.get(bot=bot)
    # A resting limit order, as a live exchange would hold one (the bot itself sends market
    # orders; the page shows whatever the books hold as open).
    Order.objects.create(
        bot=bot, client_order_id=f"tb{bot.pk}-resting-buy", symbol=bot.symbol, side="buy",
        order_type="limit", price="12345.67", qty="0.25", status="open", reason="signal",
        candle_ms=rows[0].open_time,
    )  # fmt: skip
    closed = bot.orders.filter(status="closed").first()
    trade = bot.trades.first()
    event = bot.events.first()
    assert closed is not None
    assert trade is not None
    assert event is not None

    places = market_places(exchange=bot.exchange_account.exchange, symbol=bot.symbol)

    response = trader_client.get(f"/bots/{bot.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="bot-status">Running</span>' in html
    assert f'<td class="realised-pnl">{floatformat(position.pnl, 2)}</td>' in html
    assert f'<td class="unrealised-pnl">{floatformat(position.unrealized_pnl, 2)}</td>' in html
    # quantities and prices with the market's precision (Bitget BTC/USDT: 6 and 2 places)
    assert (places.qty, places.price) == (6, 2)
    assert f"{floatformat(position.qty, places.qty)} BTC/USDT" in html
    open_orders = html.split('id="bot-open-orders"')[1].split("</section>")[0]
    assert "12345.67" in open_orders
    assert "<td>limit</td>" in open_orders
    assert f"tb{bot.pk}-resting-buy" in open_orders
    assert closed.client_order_id not in open_orders  # a filled order is not open
    trades = html.split('id="bot-trades"')[1].split("</section>")[0]
    assert f"<td>{floatformat(trade.price, places.price)}</td>" in trades
    assert event.message in html
    assert 'id="bot-start"' not in html  # running: only Stop is offered
    assert 'id="bot-stop"' in html
    assert 'name="flatten"' in html
    assert "csrfmiddlewaretoken" in html


def test_another_users_bot_is_a_404(trader_client, other_user, rows):
    theirs = stopped_bot(other_user, rows, "theirs")

    assert trader_client.get(f"/bots/{theirs.pk}/").status_code == 404
    assert trader_client.post(f"/bots/{theirs.pk}/start/").status_code == 404
    assert status_of(theirs) == "stopped"
    Bot.objects.filter(pk=theirs.pk).update(status="running")
    assert trader_client.post(f"/bots/{theirs.pk}/stop/").status_code == 404
    assert status_of(theirs) == "running"
    assert trader_client.get("/bots/999999/").status_code == 404


def test_start_and_stop_change_the_status(trader_client, user, rows):
    bot = stopped_bot(user, rows)
    page = f"/bots/{bot.pk}/"
    assert 'id="bot-start"' in trader_client.get(page).content.decode()

    started = trader_client.post(f"/bots/{bot.pk}/start/", follow=True)
    assert started.redirect_chain == [(page, 302)]
    assert status_of(bot) == "running"
    assert "“pager” started." in shown_messages(started)

    # A second start is refused by the service: a message on the page, not a 500.
    again = trader_client.post(f"/bots/{bot.pk}/start/", follow=True)
    assert again.status_code == 200
    assert "The bot is running; it cannot start." in shown_messages(again)

    stopped = trader_client.post(f"/bots/{bot.pk}/stop/", {"flatten": "on"}, follow=True)
    assert status_of(bot) == "stopped"
    assert "“pager” stopped." in shown_messages(stopped)
    # the box reached the service (the bot held nothing, so there was nothing to sell)
    assert Bot.objects.get(pk=bot.pk).stop_flatten is True
    assert bot.events.filter(kind="stopped").exists()

    again = trader_client.post(f"/bots/{bot.pk}/stop/", follow=True)
    assert "The bot is already stopped." in shown_messages(again)


def test_stop_without_the_box_keeps_the_position(trader_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "holder").bot
    held = Position.objects.get(bot=bot).qty

    trader_client.post(f"/bots/{bot.pk}/stop/")

    assert status_of(bot) == "stopped"
    assert Position.objects.get(bot=bot).qty == held > 0
    assert not bot.orders.filter(reason="stop").exists()


def test_start_and_stop_are_post_only_and_csrf_protected(user, rows):
    bot = stopped_bot(user, rows)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    assert client.get(f"/bots/{bot.pk}/start/").status_code == 405
    assert client.post(f"/bots/{bot.pk}/start/").status_code == 403  # no token
    assert status_of(bot) == "stopped"

    client.get(f"/bots/{bot.pk}/")  # the page sets the CSRF cookie its forms use
    token = client.cookies["csrftoken"].value
    response = client.post(f"/bots/{bot.pk}/start/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert status_of(bot) == "running"


def test_the_list_starts_and_stops_a_bot_and_comes_back_to_the_list(trader_client, user, rows):
    # given the list with a stopped bot: its row offers Start (a POST form), its Stop is hidden
    bot = stopped_bot(user, rows, "listed")
    html = trader_client.get("/bots/").content.decode()
    assert f'action="/bots/{bot.pk}/start/" class="bot-start">' in html
    assert f'action="/bots/{bot.pk}/stop/" class="bot-stop" hidden>' in html
    assert 'name="csrfmiddlewaretoken"' in html

    # when the trader starts it from the list
    started = trader_client.post(f"/bots/{bot.pk}/start/", {"next": "list"}, follow=True)

    # then it runs, and the trader is back on the list, which now offers Stop
    assert started.redirect_chain == [("/bots/", 302)]
    assert status_of(bot) == "running"
    assert "“listed” started." in shown_messages(started)
    html = started.content.decode()
    assert f'action="/bots/{bot.pk}/start/" class="bot-start" hidden>' in html
    assert f'action="/bots/{bot.pk}/stop/" class="bot-stop">' in html

    # and when they stop it from the list, it stops, back on the list
    stopped = trader_client.post(f"/bots/{bot.pk}/stop/", {"next": "list"}, follow=True)
    assert stopped.redirect_chain == [("/bots/", 302)]
    assert status_of(bot) == "stopped"
    assert "“listed” stopped." in shown_messages(stopped)


def test_the_page_shows_every_setting_in_the_traders_time_zone(trader_client, user, rows):
    # given a trader in Paris and a replay bot with every risk setting
    user.time_zone = "Europe/Paris"
    user.save(update_fields=["time_zone"])
    runner = replay_bot(
        user, paper_account(user, label="My paper"), start_ms=rows[0].open_time, speed=SPEED,
        name="configured", params={"fast": 7, "slow": 21}, order_size=Decimal("0.25"),
        max_position=Decimal("2500"), stop_loss_pct=Decimal("2.5"),
        take_profit_pct=Decimal("6"), daily_loss_limit=Decimal("150"),
    )  # fmt: skip
    runner.clock.now = time.time()
    runner.start()
    for _ in range(3):
        runner.next_candle()
    bot = runner.refresh()
    event = bot.events.filter(kind="tick").first()
    assert event is not None
    assert event.message.startswith("Candle ")

    # when they open its page
    html = trader_client.get(f"/bots/{bot.pk}/").content.decode()

    # then each setting is there, worded for a trader
    paris = ZoneInfo("Europe/Paris")
    start = datetime.fromtimestamp(rows[0].open_time / 1000, tz=paris)
    candle = datetime.fromtimestamp(bot.last_candle_ms / 1000, tz=paris)
    replay = f'from <span id="setting-replay-start">{start:%Y-%m-%d %H:%M}</span>'
    for text in (
        "BTC/USDT 5m", "My paper", "Moving-average crossover",
        "Fast moving-average length, in candles", "<dd>7</dd>", "<dd>21</dd>", replay,
        "25 % of the free USDT balance", "2500 USDT", "2.5 % below the entry",
        "6 % above the entry", "150 USDT: the bot stops",
    ):  # fmt: skip
        assert text in html, text
    # and the times are the trader's: the last tick, the last candle, the tick's log line
    ticked = timezone.localtime(bot.last_tick_at, paris)
    assert f'id="bot-last-tick">{ticked:%Y-%m-%d %H:%M:%S}<' in html
    assert f'id="bot-last-candle">{candle:%Y-%m-%d %H:%M}<' in html
    assert f"Candle {candle:%Y-%m-%d %H:%M}: signal" in html
    utc = datetime.fromtimestamp(bot.last_candle_ms / 1000, tz=UTC)
    assert f"Candle {utc:%Y-%m-%d %H:%M}:" not in html  # Paris is never UTC's hour
