"""Close position now: the trader's market close of a bot's position, through the API and the
bot's page, on the crash-safe order pipeline; spot and perp, running and stopped bots; refused
with the envelope when there is nothing to close, another user's bot a 404, CSRF on."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from bots import services
from bots.models import Bot, BotEvent, Order, Position, Trade
from bots.services.lease import lease_claim_for_close
from markets.models import PaperOrder, PaperPosition
from tests.backtests.api_helpers import error_of
from tests.bots.bot_helpers import (
    Scripted,
    holding_bot,
    paper_account,
    paper_free,
    replay_bot,
    scripted_bot,
)
from tests.bots.perp_parity_helpers import XRP, perp_bot

BOTS = "/api/bots"
SHORTS = {"fast": 5, "slow": 20, "allow_short": True}


def close(client: Any, bot: Bot) -> Any:
    return client.post(f"{BOTS}/{bot.pk}/close-position", format="json")


def position(bot: Bot) -> Position:
    return Position.objects.get(bot=bot, symbol=bot.symbol)


def test_it_closes_a_running_spot_bots_position_at_market_and_books_the_fill(
    auth_client, user, rows, caplog
):
    # given a running paper replay bot holding BTC, with its stop-loss resting on the exchange
    runner = holding_bot(user, paper_account(user), rows, "holder")
    bot = runner.bot
    held = position(bot).qty
    realised_before = position(bot).pnl
    orders_before = bot.orders.count()
    # when the trader closes the position through the API
    with caplog.at_level(logging.INFO, logger="bots.bot"):
        response = close(auth_client, bot)
    # then the answer is the closing order, filled at market, and the bot, flat and running
    assert response.status_code == 200, response.content
    body = response.json()
    order = Order.objects.get(client_order_id=body["order"]["client_order_id"])
    assert order.client_order_id == f"tb{bot.pk}-close{orders_before}"
    assert (order.side, order.order_type, order.reason, order.status) == (
        "sell", "market", "close", "closed",
    )  # fmt: skip
    assert order.qty == held == order.filled_qty
    assert order.average_price is not None
    assert order.average_price > 0
    assert body["order"]["order_type"] == "market"
    assert Decimal(body["order"]["average_price"]) == order.average_price
    assert body["bot"]["status"] == "running"
    assert body["bot"]["position"]["qty"] == "0"
    # one trade books the fill at that price, with its realised PnL in the position
    trade = Trade.objects.get(order=order)
    assert (trade.side, trade.qty, trade.price) == ("sell", held, order.average_price)
    assert position(bot).qty == 0
    assert position(bot).pnl == realised_before + trade.pnl
    # the paper ledger holds no BTC any more, and no order reserves any
    assert paper_free(bot.exchange_account, "BTC") == 0
    assert not bot.orders.filter(status__in=Order.OPEN_STATUSES).exists()
    # the bot's log and one log line say so; the lease is free again
    event = BotEvent.objects.filter(bot=bot, kind="position_closed").get()
    assert "keeps running" in event.message
    lines = [r for r in caplog.records if r.getMessage() == "bot.position_closed"]
    assert len(lines) == 1
    assert lines[0].bot_id == bot.pk
    assert lines[0].client_order_id == order.client_order_id
    bot.refresh_from_db()
    assert bot.tick_lease_token == ""
    assert bot.risk_exit_target == 1


def test_a_running_bot_waits_for_a_new_signal_before_it_enters_again(
    auth_client, user, rows, scripted_strategies
):
    # given a running scripted bot that bought on a long signal
    runner = scripted_bot(user, paper_account(user), start_ms=rows[300].open_time)
    runner.start()
    Scripted.target = 1
    runner.next_candle()
    assert position(runner.bot).qty > 0
    # when the trader closes it, and the signal stays long for two more candles
    assert close(auth_client, runner.bot).status_code == 200
    runner.next_candle()
    runner.next_candle()
    # then it stays flat and running
    assert position(runner.bot).qty == 0
    assert runner.refresh().status == Bot.Status.RUNNING
    # and when the signal goes flat and long again, it enters again
    Scripted.target = 0
    runner.next_candle()
    Scripted.target = 1
    runner.next_candle()
    assert position(runner.bot).qty > 0


def test_it_closes_a_stopped_perp_bots_short_with_a_reduce_only_buy(auth_client, user, xrp):
    # given a perp bot that went short, then was stopped without closing the position
    runner = perp_bot(user, paper_account(user), start_ms=xrp[0], params=SHORTS, leverage=3)
    runner.start()
    for _ in range(200):
        runner.next_candle()
        if position(runner.bot).qty > 0:
            break
    bot = services.bot_stop(bot=runner.refresh(), by=user)
    held = position(bot)
    assert (bot.status, held.side) == ("stopped", "short")
    assert held.qty > 0
    # when the trader closes it
    response = close(auth_client, bot)
    # then a reduce-only market buy closed the whole short, on the paper exchange too
    assert response.status_code == 200, response.content
    order = Order.objects.get(client_order_id=response.json()["order"]["client_order_id"])
    assert (order.side, order.order_type, order.status, order.qty) == (
        "buy", "market", "closed", held.qty,
    )  # fmt: skip
    assert order.average_price is not None
    assert PaperOrder.objects.get(client_order_id=order.client_order_id).reduce_only is True
    exchange = PaperPosition.objects.filter(account=bot.exchange_account, symbol=XRP).first()
    assert exchange is None or exchange.qty == 0
    assert position(bot).qty == 0
    assert Trade.objects.get(order=order).price == order.average_price
    # and the bot stays stopped, its log saying so
    assert response.json()["bot"]["status"] == "stopped"
    assert "stays stopped" in BotEvent.objects.get(bot=bot, kind="position_closed").message


def test_a_bot_without_a_position_is_a_409_and_sends_nothing(auth_client, user, rows):
    # given a bot that holds nothing
    runner = replay_bot(user, paper_account(user), start_ms=rows[300].open_time, name="flat")
    # when the trader asks to close
    response = close(auth_client, runner.bot)
    # then the envelope says why and no order is written
    error = error_of(response, 409)
    assert error["code"] == "no_position"
    assert "no open position" in error["message"]
    assert not Order.objects.exists()


def test_a_bot_a_tick_holds_is_a_409_bot_busy(auth_client, user, rows, monkeypatch):
    # given a holding bot whose lease another worker holds
    bot = holding_bot(user, paper_account(user), rows, "busy").bot
    assert lease_claim_for_close(bot.pk) is not None
    monkeypatch.setattr("bots.services.closing.CLAIM_TRIES", 2)
    orders = bot.orders.count()
    # when the trader asks to close
    response = close(auth_client, bot)
    # then it is refused, the position untouched
    assert error_of(response, 409)["code"] == "bot_busy"
    assert bot.orders.count() == orders
    assert position(bot).qty > 0


def test_another_users_bot_is_a_404_and_keeps_its_position(auth_client, other_user, rows):
    bot = holding_bot(other_user, paper_account(other_user), rows, "theirs").bot
    orders = bot.orders.count()

    assert error_of(close(auth_client, bot), 404)["code"] == "not_found"
    assert error_of(auth_client.post(f"{BOTS}/999999/close-position"), 404)["code"] == "not_found"
    assert bot.orders.count() == orders
    assert position(bot).qty > 0


def test_the_api_needs_credentials_and_csrf_with_a_session(api_client, user, rows):
    bot = holding_bot(user, paper_account(user), rows, "guarded").bot
    assert error_of(close(api_client, bot), 401)["code"] == "not_authenticated"
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post(f"{BOTS}/{bot.pk}/close-position")
    assert response.status_code == 403
    assert position(bot).qty > 0


# --- the bot's page ----------------------------------------------------------------------------


def test_the_page_asks_for_confirmation_then_closes(trader_client, user, rows):
    # given a holding bot's page, which offers the close
    bot = holding_bot(user, paper_account(user), rows, "page holder").bot
    held = position(bot).qty
    page = trader_client.get(f"/bots/{bot.pk}/").content.decode()
    assert f'href="/bots/{bot.pk}/close-position/"' in page
    # when the trader follows it, the confirmation names what will be sold, and nothing moved
    confirm = trader_client.get(f"/bots/{bot.pk}/close-position/")
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert "Close the position of" in html
    assert "keeps running" in html
    assert position(bot).qty == held
    # and when they confirm it
    response = trader_client.post(f"/bots/{bot.pk}/close-position/")
    # then the position is closed and the page says so
    assert response.status_code == 302
    assert response["Location"] == f"/bots/{bot.pk}/"
    assert position(bot).qty == 0
    assert Order.objects.filter(bot=bot, reason="close", status="closed").count() == 1
    after = trader_client.get(response["Location"]).content.decode()
    assert "Position closed" in after


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_page_refuses_a_flat_bot_and_another_users_bot(trader_client, user, other_user,
                                                          rows, method):  # fmt: skip
    flat = replay_bot(user, paper_account(user), start_ms=rows[300].open_time, name="flat")
    theirs = holding_bot(other_user, paper_account(other_user), rows, "theirs").bot

    assert getattr(trader_client, method)(f"/bots/{theirs.pk}/close-position/").status_code == 404
    response = getattr(trader_client, method)(f"/bots/{flat.bot.pk}/close-position/")
    assert response.status_code == 302
    assert "no open position" in trader_client.get(response["Location"]).content.decode()
    assert position(theirs).qty > 0


def test_the_page_close_is_csrf_protected(user, rows):
    bot = holding_bot(user, paper_account(user), rows, "csrf holder").bot
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    assert client.post(f"/bots/{bot.pk}/close-position/").status_code == 403
    assert position(bot).qty > 0


def test_a_start_waits_while_a_close_holds_the_bot(auth_client, user, rows):
    # given a stopped bot whose position a close is working on (it holds the bot's lease)
    bot = replay_bot(user, paper_account(user), start_ms=rows[300].open_time, name="held").bot
    assert lease_claim_for_close(bot.pk) is not None
    # when the trader starts it
    response = auth_client.post(f"{BOTS}/{bot.pk}/start", format="json")
    # then the start is refused until the close lets go, so that no tick races the close
    assert error_of(response, 409)["code"] == "bot_busy"
    assert Bot.objects.get(pk=bot.pk).status == Bot.Status.STOPPED
