"""Perp bots through their ticks on the paper exchange, and their API: a short shown with its
side, leverage and liquidation price; the exchange's settings set before an entry; a flip sent as
two orders under two ids; funding booked; a liquidation booked once however often it is read;
bad perp input refused with the envelope."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from bots import services
from bots.models import Bot, BotEvent, Order, Position, Trade
from bots.services.events import BotUpdates
from bots.services.markets import BotMarket
from bots.services.perp_sync import perp_position_sync
from bots.services.perp_ticks import perp_terms
from markets.models import Candle, FundingRate, PaperOrder, PaperPosition
from markets.perp import DEFAULT_TIERS
from markets.selectors import perp_market
from strategies.services import strategy_catalogue_sync
from tests.backtests.api_helpers import error_of
from tests.bots.bot_helpers import paper_account
from tests.bots.perp_parity_helpers import EXCHANGE, TIMEFRAME, XRP, perp_bot

SHORTS = {"fast": 5, "slow": 20, "allow_short": True}
BOTS = "/api/bots"


def tick_until(runner: Any, done: Any, *, most: int = 200) -> Bot:
    for _ in range(most):
        runner.next_candle()
        if done(runner.refresh()):
            return runner.bot
    raise AssertionError("the replay never got there")


def held(bot: Bot) -> Position:
    return Position.objects.get(bot=bot)


def test_a_paper_perp_bot_on_a_replay_shorts_and_shows_side_leverage_and_liquidation_price(
    auth_client: Any, user: Any, xrp: list[int]
) -> None:
    # given: a 3x perp bot on the sample, whose ma_cross goes short first (candle 20)
    runner = perp_bot(user, paper_account(user), start_ms=xrp[0], params=SHORTS, leverage=3)
    runner.start()
    # when: it runs until it holds a position
    bot = tick_until(runner, lambda bot: held(bot).qty > 0)
    # then: the API shows the short, its leverage and its liquidation price, as the exchange has it
    position = auth_client.get(f"{BOTS}/{bot.pk}").json()["position"]
    exchange = PaperPosition.objects.get(account=bot.exchange_account, symbol=XRP)
    assert position["side"] == "short" == exchange.side
    assert position["leverage"] == 3 == exchange.leverage
    assert Decimal(position["liquidation_price"]) == exchange.liquidation_price
    entry = Decimal(position["entry_price"])
    # a short's liquidation lies above its entry: E (1 + 1/3) / (1 + 0.005), on the price step
    assert Decimal(position["liquidation_price"]) == pytest.approx(
        entry * Decimal(4) / 3 / Decimal("1.005"), abs=Decimal("0.0001")
    )
    assert Decimal(position["margin"]) == exchange.margin > 0
    # and the order was a sell that opened it, under the opening id
    order = Order.objects.get(bot=bot)
    assert (order.side, order.client_order_id.endswith("-short")) == ("sell", True)
    # the exchange's settings were set before it: leverage 3 on the symbol
    assert PaperOrder.objects.get(account=bot.exchange_account).reduce_only is False


def test_a_flip_closes_with_a_reduce_only_order_and_opens_with_another_under_its_own_id(
    user: Any, xrp: list[int]
) -> None:
    # given: a perp bot holding its first short
    runner = perp_bot(user, paper_account(user), start_ms=xrp[0], params=SHORTS, leverage=3)
    runner.start()
    bot = tick_until(runner, lambda bot: held(bot).qty > 0)
    # when: the signal turns long
    bot = tick_until(runner, lambda bot: held(bot).side == "long" and held(bot).qty > 0)
    # then: one tick sent two orders: a reduce-only buy closing the short, a buy opening the long
    close, opening = Order.objects.filter(bot=bot).order_by("id")[1:3]
    assert close.candle_ms == opening.candle_ms
    assert close.client_order_id.endswith("-buy")
    assert opening.client_order_id.endswith("-long")
    papers = PaperOrder.objects.filter(account=bot.exchange_account).order_by("id")
    assert [p.reduce_only for p in papers] == [False, True, False]
    event = BotEvent.objects.get(bot=bot, kind="tick", data__candle_ms=close.candle_ms)
    assert event.data["side"] == "buy"
    assert event.data["then"] == {"side": "buy", "qty": str(opening.qty.normalize())}
    closing = Trade.objects.get(order=close)
    assert closing.pnl != 0
    assert held(bot).pnl == closing.pnl


def test_a_liquidation_is_booked_once_however_often_it_is_read(user: Any, xrp: list[int]) -> None:
    # given: a 50x perp bot holding a position the exchange has just liquidated (as if the tick
    # that found it died before booking it)
    runner = perp_bot(user, paper_account(user), start_ms=xrp[0], params=SHORTS, leverage=50)
    runner.start()
    bot = tick_until(runner, lambda bot: held(bot).qty > 0)
    position = held(bot)
    PaperPosition.objects.filter(account=bot.exchange_account, symbol=XRP).update(
        side="flat", qty=0, margin=0, entry_price=None, liquidation_price=None
    )
    # when: the position is read back twice
    market = BotMarket.of(bot, clock=runner.clock)
    perp_position_sync(bot, market, BotUpdates())
    perp_position_sync(bot, market, BotUpdates())
    # then: one closing trade at the liquidation price, reason liquidation, one warning
    liquidation = Order.objects.get(bot=bot, reason="liquidation")
    trade = Trade.objects.get(order=liquidation)
    assert trade.price == position.liquidation_price
    assert trade.side == ("buy" if position.side == "short" else "sell")
    assert trade.qty == position.qty
    assert BotEvent.objects.filter(bot=bot, kind="liquidation", level="warning").count() == 1
    assert held(bot).qty == 0
    # and the next tick stays flat on the same signal (the engine's rule after a liquidation)
    runner.next_candle()
    assert held(runner.refresh()).qty == 0


def test_a_position_held_over_a_funding_time_books_the_funding_of_the_exchange(
    user: Any, xrp: list[int]
) -> None:
    # given: a perp bot replaying the stretch with the sample's first funding times
    start = xrp.index(1637193600000) - 100
    Candle.objects.filter(exchange=EXCHANGE, symbol=XRP, timeframe=TIMEFRAME,
                          open_time__lt=xrp[start]).delete()  # fmt: skip
    runner = perp_bot(user, paper_account(user), start_ms=xrp[start], params=SHORTS, leverage=3)
    runner.start()
    # when: it holds a position over a funding time
    bot = tick_until(runner, lambda bot: held(bot).funding != 0, most=400)
    # then: the books hold what the exchange charged or paid the position
    exchange = PaperPosition.objects.get(account=bot.exchange_account, symbol=XRP)
    position = held(bot)
    if position.qty > 0:
        assert position.open_funding == exchange.funding
    sign = 1 if position.side == "short" else -1  # the sample's rates are positive: longs pay
    assert sign * position.funding > 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"symbol": "BTC/USDT:USDT", "leverage": 0}, "leverage"),
        ({"symbol": "BTC/USDT:USDT", "leverage": 126}, "leverage"),
        ({"symbol": "BTC/USDT:USDT", "leverage": 11}, "leverage"),  # above the user's cap of 10
        ({"symbol": "BTC/USDT:USDT", "margin_mode": "cross"}, "margin_mode"),
        ({"symbol": "BTC/USDT:USDT", "liquidation_buffer_pct": 100}, "liquidation_buffer_pct"),
        ({"leverage": 3}, "leverage"),  # on spot
        ({"liquidation_buffer_pct": 5}, "liquidation_buffer_pct"),  # on spot
        ({"params": {"allow_short": True}}, "params"),  # a short on spot
    ],
)
def test_bad_perp_input_is_a_400_naming_the_field(
    auth_client: Any, user: Any, overrides: dict[str, Any], field: str
) -> None:
    strategy_catalogue_sync()
    user.max_leverage = 10
    user.save(update_fields=["max_leverage"])
    body = {
        "name": "Perp", "exchange_account": paper_account(user).pk, "symbol": "BTC/USDT",
        "timeframe": "5m", "strategy": "ma_cross", "params": {"fast": 5, "slow": 20},
        "data_source": {"kind": "live"},
    } | overrides  # fmt: skip
    response = auth_client.post(BOTS, body, format="json")
    error = error_of(response, 400)
    assert field in error["details"], error
    assert not Bot.objects.exists()


def test_a_perp_bot_within_the_users_cap_is_created(auth_client: Any, user: Any) -> None:
    strategy_catalogue_sync()
    user.max_leverage = 10
    user.save(update_fields=["max_leverage"])
    body = {
        "name": "Perp", "exchange_account": paper_account(user).pk, "symbol": "BTC/USDT:USDT",
        "timeframe": "5m", "strategy": "ma_cross", "leverage": 10,
        "params": {"fast": 5, "slow": 20, "allow_short": True}, "data_source": {"kind": "live"},
        "liquidation_buffer_pct": "5",
    }  # fmt: skip
    response = auth_client.post(BOTS, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["leverage"] == 10


def test_a_short_sent_but_not_booked_before_a_crash_is_adopted_once(
    user: Any, xrp: list[int]
) -> None:
    # given: a perp bot whose tick sent its first short to the exchange and died before booking
    # it: the books as such a crash leaves them (the order pending, no trade, flat, the candle
    # not decided), the exchange holding the short (the state the SIGKILL test of spot asserts)
    runner = perp_bot(user, paper_account(user), start_ms=xrp[0], params=SHORTS, leverage=3)
    runner.start()
    before: int | None = None
    for _ in range(200):
        before = runner.refresh().last_candle_ms
        runner.next_candle()
        if held(runner.bot).qty > 0:
            break
    bot = runner.refresh()
    order = Order.objects.get(bot=bot)
    Trade.objects.filter(bot=bot).delete()
    Order.objects.filter(pk=order.pk).update(
        status=Order.Status.PENDING, filled_qty=0, average_price=None, fee=0,
        exchange_order_id="",
    )  # fmt: skip
    Position.objects.filter(bot=bot).update(qty=0, entry_price=None, entry_fees=0, margin=0,
                                            liquidation_price=None)  # fmt: skip
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=before)
    runner.clock.advance(0)
    # when: the bot ticks again on the same candle
    runner.tick()
    # then: the short is adopted from the exchange, booked once, not sent again
    paper = PaperOrder.objects.get(account=bot.exchange_account)
    order = Order.objects.get(bot=bot)
    assert (order.client_order_id, order.status) == (paper.client_order_id, Order.Status.CLOSED)
    trade = Trade.objects.get(bot=bot)
    assert (trade.side, trade.qty, trade.price) == ("sell", paper.filled, paper.average)
    position = held(bot)
    assert (position.side, position.qty) == ("short", paper.filled)
    exchange = PaperPosition.objects.get(account=bot.exchange_account, symbol=XRP)
    assert position.liquidation_price == exchange.liquidation_price
    assert before is not None
    assert (runner.refresh().last_candle_ms or 0) > before


def test_the_funding_at_the_open_of_a_liquidation_candle_is_in_the_liquidations_pnl(
    user: Any, xrp: list[int]
) -> None:
    # given: a 50x bot whose short is liquidated in the candle opened at 1637209800000 (see the
    # parity test), and a funding time at that very open (a short receives 1 %)
    start = xrp[780]
    Candle.objects.filter(exchange=EXCHANGE, symbol=XRP, timeframe=TIMEFRAME,
                          open_time__lt=start).delete()  # fmt: skip
    liquidated_at = 1637209800000
    FundingRate.objects.create(exchange=EXCHANGE, symbol=XRP, funding_time=liquidated_at,
                               rate=Decimal("0.01"))  # fmt: skip
    account = paper_account(user, paper_slippage_bps=Decimal(0))
    runner = perp_bot(user, account, start_ms=start, params=SHORTS, leverage=50,
                      order_size=Decimal("0.1"))  # fmt: skip
    runner.start()
    # when: it runs until the liquidation is booked
    bot = tick_until(runner, lambda bot: Order.objects.filter(bot=bot, reason="liquidation")
                     .exists(), most=1200)  # fmt: skip
    # then: the trade's pnl is the price move less both fees plus ALL the position's funding,
    # the payment at the liquidation candle's open included (the engine's rule P2)
    liquidation = Trade.objects.get(order__reason="liquidation", bot=bot)
    earlier = Trade.objects.filter(bot=bot, time__lt=liquidation.time)
    opening = earlier.order_by("-time", "-id").first()  # (a flip closes first, then opens)
    assert opening is not None
    assert (opening.side, liquidation.side, int(liquidation.time.timestamp() * 1000)) == (
        "sell", "buy", liquidated_at,
    )  # fmt: skip
    exchange = PaperPosition.objects.get(account=account, symbol=XRP)
    assert exchange.side == "flat"  # the next tick did not open again yet: its funding is there
    assert exchange.funding > liquidation.qty * Decimal("1.1") * Decimal("0.01")
    move = (opening.price - liquidation.price) * liquidation.qty
    assert liquidation.pnl == move - opening.fee - liquidation.fee + exchange.funding
    assert held(bot).open_funding == 0  # all of it went into the trade


def test_a_stop_with_flatten_closes_a_short_with_a_reduce_only_buy(
    user: Any, xrp: list[int]
) -> None:
    runner = perp_bot(user, paper_account(user), start_ms=xrp[0], params=SHORTS, leverage=3)
    runner.start()
    bot = tick_until(runner, lambda bot: held(bot).qty > 0)
    assert held(bot).side == "short"
    # when: the trader stops it and asks for the position to be closed
    services.bot_stop(bot=bot, flatten=True, by=user, clock=runner.clock)
    # then: a reduce-only buy closed the short, on the exchange and in the books
    stop = Order.objects.get(bot=bot, reason="stop")
    assert (stop.side, stop.status) == ("buy", Order.Status.CLOSED)
    paper = PaperOrder.objects.get(
        account=bot.exchange_account, client_order_id=stop.client_order_id
    )
    assert paper.reduce_only is True
    assert PaperPosition.objects.get(account=bot.exchange_account, symbol=XRP).side == "flat"
    assert held(bot).qty == 0
    assert runner.refresh().status == Bot.Status.STOPPED


def test_a_perp_bot_decides_with_its_markets_maintenance_tiers(user: Any) -> None:
    # BTC/USDT:USDT ships Bitget's tiers (the catalog's), the buffer's liquidation price uses them
    strategy_catalogue_sync()
    config = services.BotConfig(
        name="BTC perp", exchange_account=paper_account(user), symbol="BTC/USDT:USDT",
        timeframe="5m", strategy="ma_cross", params=SHORTS, leverage=10,
        liquidation_buffer_pct=Decimal(5),
    )  # fmt: skip
    bot = services.bot_create(user=user, config=config)
    terms = perp_terms(bot, Position.objects.get(bot=bot))
    market = perp_market(exchange=EXCHANGE, symbol="BTC/USDT:USDT")
    assert market is not None
    assert terms.tiers == market.tiers != DEFAULT_TIERS
    assert (terms.leverage, terms.liquidation_buffer_pct) == (10, Decimal(5))
