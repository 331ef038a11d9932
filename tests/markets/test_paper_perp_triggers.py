"""Trigger orders on the paper exchange's perpetual swaps (``paper_perp_triggers``): a short's
buy stop and take-profit close the position through the reduce path, by the engine's fill rule,
after the funding due at the candle's open; one whose position is gone is cancelled.

BTC/USDT:USDT from the shipped snapshot (price step 0.1, taker fee 0.0006), reference price
20000, the default 5 bps of slippage: the short opens at 19990.0.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from markets.exchanges.markets import forget_catalogs
from markets.exchanges.paper import PaperExchange
from markets.exchanges.paper_ledger import fund
from markets.exchanges.prices import FixedPrices
from markets.models import FundingRate, PaperBalance, PaperOrder, PaperPosition

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC: a funding time
HOUR = 3_600_000
BTC = "BTC/USDT:USDT"
D = Decimal


@pytest.fixture(autouse=True)
def _fresh_catalogs():
    forget_catalogs()
    yield
    forget_catalogs()


@pytest.fixture
def account(exchange_account_factory):
    account = exchange_account_factory(mode="paper")
    fund(account, {"USDT": D("1000")})
    return account


@pytest.fixture
def paper(account):
    # market time: one hour before the funding time T0 + 8 h
    return PaperExchange(account, prices=FixedPrices({BTC: D("20000")}, now_ms=T0 + 7 * HOUR))


def short_with_stop(paper, stop="20400.0"):
    paper.set_leverage(BTC, 5)
    paper.create_perp_order(BTC, "market", "sell", D("0.1"), client_order_id="open")
    return paper.create_trigger_order(
        BTC, "stop_market", "buy", D("0.1"), D(stop), reduce_only=True, client_order_id="sl"
    )


def free(account):
    return PaperBalance.objects.get(account=account, currency="USDT").free


def test_a_shorts_buy_stop_closes_it_at_its_level_with_slippage_and_the_taker_fee(paper, account):
    short_with_stop(paper)
    margin = PaperPosition.objects.get(account=account, symbol=BTC).margin
    before = free(account)
    # a candle that opens under the stop and whose high reaches it
    [fired] = paper.match_trigger_orders(BTC, [[T0 + 7 * HOUR, 20100, 20500, 20000, 20300, 1]])
    # at the level 20400.0, plus 5 bps of slippage on a buy: 20410.2
    assert (fired["status"], fired["filled"], fired["average"]) == ("closed", 0.1, 20410.2)
    assert fired["lastTradeTimestamp"] == T0 + 7 * HOUR
    position = PaperPosition.objects.get(account=account, symbol=BTC)
    assert (position.side, position.qty, position.margin) == ("flat", 0, 0)
    pnl = (D("19990.0") - D("20410.2")) * D("0.1")
    fee = D("20410.2") * D("0.1") * D("0.0006")
    assert free(account) == before + margin + pnl - fee
    order = PaperOrder.objects.get(client_order_id="sl")
    assert (order.cost, order.fee_cost) == (D("2041.02"), fee)


def test_a_gap_over_the_stop_fills_at_the_worse_open(paper, account):
    short_with_stop(paper)
    [fired] = paper.match_trigger_orders(BTC, [[T0 + 7 * HOUR, 20600, 20700, 20500, 20600, 1]])
    assert fired["average"] == 20610.3  # the open 20600, plus slippage


def test_the_funding_at_the_candles_open_is_charged_before_the_trigger_closes(paper, account):
    # given: a funding time at the open of the candle that fires the stop; a short receives
    FundingRate.objects.create(exchange="bitget", symbol=BTC, funding_time=T0 + 8 * HOUR,
                               rate=D("0.001"))  # fmt: skip
    short_with_stop(paper)
    # when: the stop fires in the candle opened at that funding time
    paper.match_trigger_orders(BTC, [[T0 + 8 * HOUR, 20300, 20450, 20250, 20400, 1]])
    # then: the position was paid its funding (0.1 x the trade open 20300 x 0.001) first
    position = PaperPosition.objects.get(account=account, symbol=BTC)
    assert position.funding == D("2.03")
    assert position.side == "flat"


def test_a_trigger_whose_position_is_gone_is_cancelled_with_nothing_filled(paper, account):
    short_with_stop(paper)
    paper.create_perp_order(BTC, "market", "buy", D("0.1"), reduce_only=True, client_order_id="c")
    before = free(account)
    [fired] = paper.match_trigger_orders(BTC, [[T0 + 7 * HOUR, 20100, 20500, 20000, 20300, 1]])
    assert (fired["status"], fired["filled"]) == ("canceled", 0.0)
    assert free(account) == before
