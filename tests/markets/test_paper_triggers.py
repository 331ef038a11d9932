"""Trigger orders on the paper exchange (stop-loss / take-profit), with numbers checked by hand.

BTC/USDT in the shipped Bitget snapshot: price step 0.01, taker fee 0.002; the account's maker
fee is set to 0.001 so that a fill shows which one it paid; slippage the default 5 bps. The
account holds 0.01 BTC and nothing else; the orders are placed at market time T0.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from markets.exchanges import errors
from markets.exchanges.markets import forget_catalogs
from markets.exchanges.paper import PaperExchange
from markets.exchanges.paper_ledger import fund
from markets.exchanges.prices import FixedPrices
from markets.models import Candle, PaperBalance

T0 = 1_704_067_200_000
FIVE_MIN = 300_000
BTC = "BTC/USDT"
AMOUNT = Decimal("0.01")


@pytest.fixture(autouse=True)
def _fresh_catalogs():
    forget_catalogs()
    yield
    forget_catalogs()


@pytest.fixture
def account(exchange_account_factory):
    account = exchange_account_factory(mode="paper", paper_maker_fee=Decimal("0.001"))
    fund(account, {"BTC": AMOUNT})
    return account


@pytest.fixture
def paper(account):
    return PaperExchange(account, prices=FixedPrices({BTC: Decimal("20000")}, now_ms=T0))


def bar(open_time, *, open, high, low):
    """An OHLCV row as ccxt gives it (floats)."""
    return [open_time, open, high, low, (high + low) / 2, 1.5]


def balances(account):
    return {b.currency: (b.free, b.used) for b in PaperBalance.objects.filter(account=account)}


def protect(paper, *, stop="19000", take="21000"):
    """A sell stop and a sell take-profit for the 0.01 BTC held."""
    placed = paper.create_trigger_order(
        BTC, "stop_market", "sell", AMOUNT, Decimal(stop), client_order_id="sl-1"
    )
    taken = paper.create_trigger_order(
        BTC, "take_profit_market", "sell", AMOUNT, Decimal(take), client_order_id="tp-1"
    )
    return placed, taken


def test_trigger_orders_rest_open_with_their_trigger_price_and_reserve_nothing(account, paper):
    stop, take = protect(paper, stop="18999.999")  # rounded to the price step
    assert (stop["type"], stop["status"], stop["side"]) == ("stop_market", "open", "sell")
    assert stop["price"] == stop["triggerPrice"] == 19000.0
    assert take["type"] == "take_profit_market"
    assert take["triggerPrice"] == 21000.0
    assert stop["reduceOnly"] is True
    assert stop["timestamp"] == T0
    assert balances(account) == {"BTC": (AMOUNT, 0)}  # both rest on the same 0.01 BTC
    assert [o["clientOrderId"] for o in paper.fetch_open_orders(BTC)] == ["sl-1", "tp-1"]
    assert paper.fetch_order(None, BTC, client_order_id="sl-1", trigger=True) == stop


def test_a_stop_fills_at_its_price_less_slippage_with_the_taker_fee_in_the_candle_that_reaches_it(
    account, paper
):
    # given
    stop, _ = protect(paper)
    # when: a candle a cent above the stop, then one through it
    missed = paper.match_trigger_orders(BTC, [bar(T0, open=19500, high=19600, low=19000.01)])
    fired = paper.match_trigger_orders(BTC, [bar(T0 + FIVE_MIN, open=19400, high=19450, low=18900)])
    # then: 19000 x (1 - 0.0005) = 18990.50; cost 189.905, taker fee 0.37981
    assert missed == []
    [order] = fired
    assert order["id"] == stop["id"]
    assert order["status"] == "closed"
    assert order["average"] == 18990.5
    assert order["filled"] == 0.01
    assert order["fee"] == {"cost": 0.37981, "currency": "USDT", "rate": 0.002}
    assert order["lastTradeTimestamp"] == T0 + FIVE_MIN
    assert balances(account) == {"BTC": (0, 0), "USDT": (Decimal("189.52519"), 0)}


def test_a_stop_gapped_through_fills_at_the_worse_open(account, paper):
    protect(paper)
    [order] = paper.match_trigger_orders(BTC, [bar(T0, open=18800, high=18900, low=18700)])
    assert order["average"] == 18790.6  # 18800 x 0.9995


def test_a_take_profit_fills_at_its_price_or_the_better_open_without_slippage(account, paper):
    _, take = protect(paper)
    [order] = paper.match_trigger_orders(BTC, [bar(T0, open=20500, high=21000, low=20400)])
    assert order["id"] == take["id"]
    assert order["average"] == 21000.0
    assert order["fee"]["rate"] == 0.002  # a triggered market order: the taker fee


def test_a_take_profit_gapped_through_fills_at_the_better_open(account, paper):
    protect(paper)
    [order] = paper.match_trigger_orders(BTC, [bar(T0, open=21300, high=21400, low=21200)])
    assert order["average"] == 21300.0


def test_when_one_candle_reaches_both_the_stop_fills_and_the_take_profit_finds_nothing_to_sell(
    account, paper
):
    stop, take = protect(paper)
    fired = paper.match_trigger_orders(BTC, [bar(T0, open=20000, high=21500, low=18500)])
    assert [(o["id"], o["status"]) for o in fired] == [
        (stop["id"], "closed"),
        (take["id"], "canceled"),  # fired without the BTC its sibling sold
    ]
    assert fired[1]["filled"] == 0.0
    assert balances(account)["BTC"] == (0, 0)


def test_candles_are_taken_in_time_order_and_a_candle_before_the_order_does_not_fire_it(
    account, paper
):
    stop, _ = protect(paper)
    early = bar(T0 - FIVE_MIN, open=19000, high=19100, low=18000)  # before the placement
    later = bar(T0 + 2 * FIVE_MIN, open=21500, high=21600, low=21400)
    first = bar(T0 + FIVE_MIN, open=19200, high=19300, low=18950)
    fired = paper.match_trigger_orders(BTC, [later, early, first])
    assert next((o["id"], o["lastTradeTimestamp"]) for o in fired) == (stop["id"], T0 + FIVE_MIN)


def test_a_cancelled_trigger_does_not_fire(account, paper):
    stop, take = protect(paper)
    cancelled = paper.cancel_order(stop["id"], BTC, trigger=True)
    assert cancelled["status"] == "canceled"
    assert paper.match_trigger_orders(BTC, [bar(T0, open=19500, high=19600, low=18000)]) == []
    assert [o["id"] for o in paper.fetch_open_orders(BTC)] == [take["id"]]


def test_stored_candles_fire_triggers_too(account, paper):
    protect(paper)
    stored = Candle.objects.create(
        exchange="bitget", symbol=BTC, timeframe="5m", open_time=T0, open=Decimal("19500"),
        high=Decimal("19600"), low=Decimal("18999.99"), close=Decimal("19100"), volume=1,
    )  # fmt: skip
    [order] = paper.match_trigger_orders(BTC, Candle.objects.filter(pk=stored.pk))
    assert order["type"] == "stop_market"
    assert order["status"] == "closed"


def test_trigger_orders_are_checked_like_any_order(account, paper):
    with pytest.raises(errors.BelowMinimumError):
        paper.create_trigger_order(BTC, "stop_market", "sell", Decimal("0.00001"), Decimal("19000"))
    with pytest.raises(errors.InvalidOrderError):
        paper.create_trigger_order(BTC, "limit", "sell", AMOUNT, Decimal("19000"))
    with pytest.raises(errors.InvalidOrderError):  # and create_order makes none
        paper.create_order(BTC, "stop_market", "sell", AMOUNT)
    protect(paper)
    with pytest.raises(errors.InvalidOrderError, match="already used"):
        paper.create_trigger_order(
            BTC, "stop_market", "sell", AMOUNT, Decimal("18000"), client_order_id="sl-1"
        )
