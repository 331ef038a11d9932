"""Signals in: a bot's webhook token (made, rotated, revoked; another user's bot a 404), the
webhook ``POST /api/signals/<token>`` (idempotent by the sender's id, a wrong token 404, a bad
body the 400 envelope, the IP allow-list 403, the rate limit 429, a stopped bot 409, a short on
spot refused) and what a signal does: one order through the risk checks and the crash-safe
pipeline, a perp short, the ``signals`` strategy's tick keeping it."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.test import Client
from rest_framework.test import APIClient

from bots import services
from bots.models import Bot, BotEvent, Order, Position, Signal, Trade
from bots.services import BotConfig
from bots.services.signal_access import signal_token_hash
from markets.models import PaperOrder
from tests.backtests.api_helpers import error_of
from tests.bots.bot_helpers import ManualClock, ReplayBot, as_datetime, paper_account, replay_bot
from tests.bots.perp_parity_helpers import TIMEFRAME, XRP

BOTS = "/api/bots"


def signals_bot(user: Any, rows: list[Any], **fields: Any) -> Any:
    """A started paper replay bot of the ``signals`` strategy, a few candles in."""
    runner = replay_bot(user, paper_account(user), start_ms=rows[30].open_time,
                        strategy="signals", params={}, **fields)  # fmt: skip
    runner.start()
    runner.next_candle()
    return runner


def make_token(client: Any, bot: Bot) -> str:
    response = client.post(f"{BOTS}/{bot.pk}/signal-token")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["webhook_url"].endswith(f"/api/signals/{body['token']}")
    token: str = body["token"]
    return token


def send(token: str, body: Any, **extra: Any) -> Any:
    """Post a signal as TradingView does: no session, no CSRF token, no auth header."""
    client = APIClient(enforce_csrf_checks=True)
    return client.post(f"/api/signals/{token}", body, format="json", **extra)


def position(bot: Bot) -> Position:
    return Position.objects.get(bot=bot, symbol=bot.symbol)


def test_a_buy_posted_twice_with_the_same_id_places_exactly_one_order(auth_client, user, rows):
    # given a started paper bot of strategy signals, and its webhook token
    runner = signals_bot(user, rows)
    bot = runner.bot
    token = make_token(auth_client, bot)
    # when a buy signal is posted twice with the same id
    first = send(token, {"action": "buy", "id": "alert-1", "ticker": "BTCUSDT", "price": "1"})
    again = send(token, {"action": "buy", "id": "alert-1"})
    # then one market order was placed and filled at the replay's price, the repeat a duplicate
    assert first.status_code == 200, first.content
    assert first.json()["duplicate"] is False
    signal = first.json()["signal"]
    assert (signal["id"], signal["action"], signal["target"], signal["outcome"]) == (
        "alert-1", "buy", 1, "traded",
    )  # fmt: skip
    assert again.status_code == 200, again.content
    assert again.json()["duplicate"] is True
    assert again.json()["signal"]["order"] == signal["order"]
    [order] = Order.objects.filter(bot=bot, order_type="market")
    assert order.client_order_id == f"tb{bot.pk}-s{Signal.objects.get().pk}-buy"
    assert (order.side, order.status, order.reason) == ("buy", "closed", "signal")
    assert PaperOrder.objects.filter(account=bot.exchange_account, order_type="market").count() == 1
    [trade] = Trade.objects.filter(bot=bot)
    candle = Bot.objects.get(pk=bot.pk).last_candle_ms
    close = next(row.close for row in rows if row.open_time == candle)
    assert abs(float(trade.price) / float(close) - 1) < 0.01  # the replay's current price
    assert position(bot).qty == trade.qty > 0
    assert Bot.objects.get(pk=bot.pk).signal_target == 1
    assert BotEvent.objects.filter(bot=bot, kind="signal").count() == 1
    # and the next candles' ticks keep the position the signal opened
    for _ in range(3):
        runner.next_candle()
    assert position(bot).qty == trade.qty
    assert Order.objects.filter(bot=bot, order_type="market").count() == 1
    # a sell signal closes it, and the bot stays flat on its ticks
    assert send(token, {"action": "sell", "id": "alert-2"}).json()["signal"]["outcome"] == "traded"
    runner.next_candle()
    assert position(bot).qty == 0
    listed = auth_client.get(f"{BOTS}/{bot.pk}/signals").json()
    assert [s["id"] for s in listed["results"]] == ["alert-2", "alert-1"]


def test_a_wrong_or_rotated_token_is_a_404_and_a_bad_body_the_400_envelope(
    auth_client, user, rows, caplog
):
    # given a bot whose token was rotated
    bot = signals_bot(user, rows).bot
    old = make_token(auth_client, bot)
    token = make_token(auth_client, bot)
    # then the old token and a made-up one are 404s, nothing stored
    error_of(send(old, {"action": "buy", "id": "a"}), 404)
    with caplog.at_level(logging.INFO, logger="tradingbot.access"):
        assert error_of(send("nope", {"action": "buy", "id": "a"}), 404)["code"] == "not_found"
    assert all("nope" not in r.getMessage() and getattr(r, "path", "") != "/api/signals/nope"
               for r in caplog.records)  # fmt: skip
    # and a bad body is a 400 envelope naming the field
    bad = {
        "action": {"action": "jump", "id": "a"},
        "id": {"action": "buy"},
    }
    for field, body in bad.items():
        error = error_of(send(token, body), 400)
        assert error["code"] == "validation_error"
        assert field in error["details"]
    long_id = error_of(send(token, {"action": "buy", "id": "x" * 65}), 400)
    assert "id" in long_id["details"]
    client = APIClient()
    malformed = client.post(f"/api/signals/{token}", "{not json", content_type="application/json")
    assert error_of(malformed, 400)["code"] == "malformed_request"
    plain = client.post(f"/api/signals/{token}", "buy now", content_type="text/plain")
    assert error_of(plain, 400)["code"] == "malformed_request"
    wrong = error_of(send(token, {"action": "buy", "id": "b", "ticker": "ETHUSDT"}), 400)
    assert wrong["code"] == "wrong_symbol"
    short = error_of(send(token, {"action": "short", "id": "c"}), 400)
    assert short["code"] == "short_on_spot"
    assert not Signal.objects.exists()
    assert not Order.objects.filter(bot=bot).exists()


def test_tradingviews_text_plain_body_is_read_as_json(auth_client, user, rows):
    bot = signals_bot(user, rows).bot
    token = make_token(auth_client, bot)
    response = APIClient().post(
        f"/api/signals/{token}", '{"action": "long", "id": "tv-1"}', content_type="text/plain"
    )
    assert response.status_code == 200, response.content
    assert response.json()["signal"]["outcome"] == "traded"


def test_the_token_endpoint_is_the_owners_and_revoking_disables_signals(
    auth_client, api_client, user, other_user, rows
):
    bot = signals_bot(user, rows).bot
    # another user's bot is a 404, and nothing is made
    other = APIClient()
    other.force_authenticate(other_user)
    error_of(other.post(f"{BOTS}/{bot.pk}/signal-token"), 404)
    error_of(other.put(f"{BOTS}/{bot.pk}/signal-allow-list", {"networks": []}, format="json"),
             404)  # fmt: skip
    error_of(other.get(f"{BOTS}/{bot.pk}/signals"), 404)
    assert Bot.objects.get(pk=bot.pk).signal_token_hash is None
    # the owner's token is stored hashed only; revoking it makes it a 404
    token = make_token(auth_client, bot)
    assert token not in Bot.objects.get(pk=bot.pk).signal_token_hash
    assert auth_client.delete(f"{BOTS}/{bot.pk}/signal-token").status_code == 204
    error_of(send(token, {"action": "buy", "id": "a"}), 404)


def test_the_allow_list_refuses_other_addresses_with_403(auth_client, user, rows):
    bot = signals_bot(user, rows).bot
    token = make_token(auth_client, bot)
    url = f"{BOTS}/{bot.pk}/signal-allow-list"
    bad = auth_client.put(url, {"networks": ["10.0.0.7/8"]}, format="json")
    assert "networks" in error_of(bad, 400)["details"]
    ok = auth_client.put(url, {"networks": ["52.89.214.238", "34.212.75.0/24"]}, format="json")
    assert ok.json() == {"networks": ["52.89.214.238/32", "34.212.75.0/24"]}
    refused = send(token, {"action": "buy", "id": "a"}, REMOTE_ADDR="198.51.100.1")
    assert error_of(refused, 403)["code"] == "ip_not_allowed"
    allowed = send(token, {"action": "buy", "id": "a"}, REMOTE_ADDR="34.212.75.30")
    assert allowed.status_code == 200, allowed.content


def test_signals_over_the_rate_limit_are_429_with_retry_after(auth_client, user, rows, settings):
    settings.SIGNAL_RATE_LIMIT = 3
    bot = signals_bot(user, rows).bot
    token = make_token(auth_client, bot)
    answers = [send(token, {"action": "flat", "id": f"n{i}"}) for i in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert error_of(answers[-1])["code"] == "rate_limited"
    assert 1 <= int(answers[-1]["Retry-After"]) <= settings.SIGNAL_RATE_WINDOW


def test_a_stopped_bot_refuses_a_signal_with_409(auth_client, user, rows):
    runner = replay_bot(user, paper_account(user), start_ms=rows[30].open_time,
                        strategy="signals", params={})  # fmt: skip
    token = make_token(auth_client, runner.bot)
    error = error_of(send(token, {"action": "buy", "id": "a"}), 409)
    assert error["code"] == "bot_not_running"
    assert not Signal.objects.exists()


def test_a_crash_between_writing_the_order_and_sending_it_does_not_double(auth_client, user, rows):
    # given a signal whose order was written but never sent (the process died in between):
    # the books as that crash leaves them
    bot = signals_bot(user, rows).bot
    token = make_token(auth_client, bot)
    signal = Signal.objects.create(bot=bot, signal_id="x1", action="buy", target=1)
    Order.objects.create(
        bot=bot, client_order_id=f"tb{bot.pk}-s{signal.pk}-buy", symbol=bot.symbol, side="buy",
        order_type="market", qty="0.001", reason="signal", candle_ms=bot.last_candle_ms or 0,
    )  # fmt: skip
    # when the same signal comes again
    response = send(token, {"action": "buy", "id": "x1"})
    # then it is acted on under the same order id, sent once
    assert response.status_code == 200, response.content
    assert response.json()["signal"]["outcome"] == "traded"
    assert PaperOrder.objects.filter(account=bot.exchange_account, order_type="market").count() == 1
    [order] = Order.objects.filter(bot=bot, order_type="market")
    assert (order.client_order_id, order.status) == (f"tb{bot.pk}-s{signal.pk}-buy", "closed")
    assert Trade.objects.filter(bot=bot).count() == 1


def test_a_crash_after_sending_before_booking_adopts_the_order_once(auth_client, user, rows):
    # given a signal whose order reached the exchange but was not booked (the books rewound)
    bot = signals_bot(user, rows).bot
    token = make_token(auth_client, bot)
    assert send(token, {"action": "buy", "id": "x2"}).status_code == 200
    order = Order.objects.get(bot=bot, order_type="market")
    Trade.objects.filter(bot=bot).delete()
    Order.objects.filter(pk=order.pk).update(status="pending", filled_qty=0, average_price=None,
                                             fee=0, exchange_order_id="")  # fmt: skip
    Position.objects.filter(bot=bot).update(qty=0, entry_price=None, entry_fees=0)
    Signal.objects.filter(bot=bot).update(outcome="received", order=None)
    # when the same signal comes again
    response = send(token, {"action": "buy", "id": "x2"})
    # then the order is adopted from the exchange, booked once, not sent again
    assert response.json()["signal"]["outcome"] == "traded", response.content
    paper = PaperOrder.objects.get(account=bot.exchange_account, order_type="market")
    [trade] = Trade.objects.filter(bot=bot)
    assert trade.qty == paper.filled
    assert position(bot).qty == paper.filled


def test_a_perp_bot_goes_short_and_flat_on_signals(auth_client, user, xrp):
    # given a started perp paper bot of strategy signals
    config = BotConfig(
        name="perp signals", exchange_account=paper_account(user), symbol=XRP,
        timeframe=TIMEFRAME, strategy="signals", params={}, leverage=3,
        data_source=Bot.DataSource.REPLAY, replay_start=as_datetime(xrp[30]), replay_speed=60.0,
    )  # fmt: skip
    runner = ReplayBot(services.bot_create(user=user, config=config), ManualClock())
    runner.start()
    runner.next_candle()
    bot = runner.refresh()
    token = make_token(auth_client, bot)
    # when a short signal comes (TradingView's perp ticker)
    short = send(token, {"action": "short", "id": "s1", "ticker": "BITGET:XRPUSDT.P"})
    # then the bot is short, and its tick keeps the short
    assert short.json()["signal"]["outcome"] == "traded", short.content
    held = position(bot)
    assert (held.side, held.symbol) == ("short", XRP)
    assert held.qty > 0
    [order] = Order.objects.filter(bot=bot, order_type="market")
    assert order.client_order_id == f"tb{bot.pk}-s{Signal.objects.get(signal_id='s1').pk}-short"
    runner.next_candle()
    assert position(bot).qty == held.qty
    # and a flat signal closes it
    flat = send(token, {"action": "flat", "id": "s2"})
    assert flat.json()["signal"]["outcome"] == "traded", flat.content
    assert position(bot).qty == 0


def test_the_bot_page_makes_a_token_shows_it_once_and_sets_the_allow_list(
    trader_client, user, other_user, rows
):
    # given a signals bot and its owner's page
    bot = signals_bot(user, rows).bot
    page = trader_client.get(f"/bots/{bot.pk}/").content.decode()
    assert "Signals <strong>disabled</strong>" in page
    # when the owner makes a token on the page
    made = trader_client.post(f"/bots/{bot.pk}/signal-token/")
    # then the page shows the webhook URL with the token and a TradingView alert message, once
    assert made.status_code == 200
    html = made.content.decode()
    url = html.split('id="signal-webhook-url" readonly value="')[1].split('"')[0]
    token = url.rsplit("/api/signals/", 1)[1]
    assert Bot.objects.get(pk=bot.pk).signal_token_hash == signal_token_hash(token)
    assert "{{strategy.market_position}}" in html.replace("&quot;", '"')
    assert token not in trader_client.get(f"/bots/{bot.pk}/").content.decode()
    assert send(token, {"action": "buy", "id": "page-1"}).status_code == 200
    shown = trader_client.get(f"/bots/{bot.pk}/").content.decode()
    assert 'data-signal-id="page-1"' in shown
    # the allow-list form keeps valid networks and refuses a bad one
    trader_client.post(f"/bots/{bot.pk}/signal-allow-list/", {"networks": "10.1.0.0/16, ::1"})
    assert Bot.objects.get(pk=bot.pk).signal_allowed_ips == ["10.1.0.0/16", "::1/128"]
    trader_client.post(f"/bots/{bot.pk}/signal-allow-list/", {"networks": "nonsense"})
    assert Bot.objects.get(pk=bot.pk).signal_allowed_ips == ["10.1.0.0/16", "::1/128"]
    # disabling makes the token a 404
    trader_client.post(f"/bots/{bot.pk}/signal-token/revoke/")
    error_of(send(token, {"action": "sell", "id": "page-2"}), 404)
    # another user's bot is a 404, and a post without the CSRF token is refused
    stranger = Client()
    stranger.force_login(other_user)
    assert stranger.post(f"/bots/{bot.pk}/signal-token/").status_code == 404
    csrf = Client(enforce_csrf_checks=True)
    csrf.force_login(user)
    assert csrf.post(f"/bots/{bot.pk}/signal-token/").status_code == 403
    assert Bot.objects.get(pk=bot.pk).signal_token_hash is None


def test_a_signal_entry_gets_its_stop_loss_and_a_flattening_stop_forgets_the_signal(
    auth_client, user, rows
):
    # given a signals bot with a stop-loss, long on a signal
    runner = signals_bot(user, rows, stop_loss_pct=Decimal(2))
    bot = runner.bot
    token = make_token(auth_client, bot)
    assert send(token, {"action": "long", "id": "sl-1"}).json()["signal"]["outcome"] == "traded"
    # then its stop-loss rests on the exchange under the signal's id
    stamp = f"tb{bot.pk}-s{Signal.objects.get().pk}"
    stop = Order.objects.get(bot=bot, client_order_id=f"{stamp}-sl")
    assert (stop.order_type, stop.status, stop.side) == ("stop_market", "open", "sell")
    # when the trader stops the bot, closing the position, and starts it again
    services.bot_stop(bot=runner.refresh(), by=user, flatten=True)
    runner.tick()
    assert runner.refresh().status == Bot.Status.STOPPED
    assert position(bot).qty == 0
    runner.start()
    runner.next_candle()
    # then the bot stays flat: the old signal does not buy it back in
    assert runner.refresh().signal_target is None
    assert position(bot).qty == 0


def test_a_bot_of_another_strategy_acts_on_a_signal_at_once(auth_client, user, rows):
    # given a running ma_cross bot whose owner enabled signals, long on its strategy's signal
    runner = replay_bot(user, paper_account(user), start_ms=rows[30].open_time, name="cross")
    runner.start()
    for _ in range(50):
        runner.next_candle()
        if position(runner.bot).qty > 0:
            break
    bot = runner.bot
    assert position(bot).qty > 0
    token = make_token(auth_client, bot)
    # when a close signal comes, then it sells at once, between two candles
    candle = runner.refresh().last_candle_ms
    assert send(token, {"action": "close", "id": "m-1"}).json()["signal"]["outcome"] == "traded"
    assert position(bot).qty == 0
    assert runner.refresh().last_candle_ms == candle


def test_a_signal_goes_through_the_risk_checks(auth_client, user, rows):
    # given a signals bot whose entries are too small for the market's minimums
    bot = signals_bot(user, rows, order_size_kind="quote", order_size=Decimal("0.01")).bot
    token = make_token(auth_client, bot)
    # when a buy comes, then nothing is sent: the signal is recorded as skipped, and says why
    signal = send(token, {"action": "buy", "id": "tiny"}).json()["signal"]
    assert (signal["outcome"], signal["order"]) == ("skipped", None)
    assert signal["message"].startswith("below_minimum")
    assert not Order.objects.filter(bot=bot).exists()
    # and a flat signal on a flat bot holds
    assert send(token, {"action": "flat", "id": "f"}).json()["signal"]["outcome"] == "held"


def test_a_signal_past_the_daily_loss_limit_stops_the_bot_instead(auth_client, user, rows):
    # given a signals bot long on a signal, whose entry's costs already pass its daily limit
    runner = signals_bot(user, rows, daily_loss_limit=Decimal("0.01"))
    bot = runner.bot
    token = make_token(auth_client, bot)
    assert send(token, {"action": "buy", "id": "in"}).json()["signal"]["outcome"] == "traded"
    # when the next signal comes
    signal = send(token, {"action": "buy", "id": "more"}).json()["signal"]
    # then it is refused, and the bot stopped and flattened as its tick would have
    assert signal["outcome"] == "refused"
    assert runner.refresh().status == Bot.Status.STOPPED
    assert position(bot).qty == 0
    assert BotEvent.objects.filter(bot=bot, kind="daily_loss_limit").exists()
