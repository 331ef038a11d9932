"""The paper exchange's perps on the shipped XRP/USDT:USDT sample (real Bitget-like data), against
a reference computed here from first principles in a plain loop over the stored rows.

Entry at the open of the first stored 1 h candle, no slippage; the account's taker fee 0.0006.
Funding at each stored funding time after the entry: ``-s * qty * mark * rate`` with the mark the
1 h mark candle's open at that time, else the 8 h one's (the sample's two mark series differ).
Liquidation at ``E (1 - s/L) / (1 - s 0.005)`` rounded to the 0.0001 tick towards the entry, on
the first candle whose 1 h mark (else trade) low/high reaches it, after that candle's funding.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

import pytest

from markets.exchanges.markets import forget_catalogs
from markets.exchanges.paper import PaperExchange
from markets.exchanges.paper_ledger import fund
from markets.exchanges.prices import FixedPrices
from markets.models import Candle, FundingRate, MarkCandle, PaperBalance, PaperPosition
from markets.perp_data import PERP_SAMPLE_SYMBOL, perp_sample_load

XRP = PERP_SAMPLE_SYMBOL
HOUR = 3_600_000
KEY = {"exchange": "bitget", "symbol": XRP}
TWELVE = Decimal("1e-12")


@pytest.fixture(autouse=True)
def _sample(db):
    forget_catalogs()
    perp_sample_load()
    yield
    forget_catalogs()


@pytest.fixture
def candles():
    return list(Candle.objects.filter(**KEY, timeframe="1h").order_by("open_time"))


def paper_at_entry(exchange_account_factory, candles, *, leverage):
    """A paper account opening at ``candles[0]``'s open."""
    account = exchange_account_factory(mode="paper", paper_slippage_bps=Decimal(0))
    fund(account, {"USDT": Decimal("1000")})
    prices = FixedPrices({XRP: candles[0].open}, now_ms=candles[0].open_time)
    paper = PaperExchange(account, prices=prices)
    paper.set_leverage(XRP, leverage)
    return account, prices, paper


def mark_open(time):
    """The 1 h mark candle's open at ``time``, else the 8 h one's."""
    for timeframe in ("1h", "8h"):
        mark = MarkCandle.objects.filter(**KEY, timeframe=timeframe, open_time=time).first()
        if mark is not None:
            return mark.open
    raise AssertionError(f"no mark at {time}")


def reference_funding(sign, qty, entry_time, until):
    """Funding times in (entry_time, until], each payment rounded as the ledger keeps it."""
    rates = FundingRate.objects.filter(
        **KEY, funding_time__gt=entry_time, funding_time__lte=until
    ).order_by("funding_time")
    return [
        (
            rate.funding_time,
            (-sign * qty * mark_open(rate.funding_time) * rate.rate).quantize(TWELVE),
        )
        for rate in rates
    ]


def free_usdt(account):
    return PaperBalance.objects.get(account=account, currency="USDT").free


def test_a_short_collects_the_samples_funding_as_the_reference_loop(
    exchange_account_factory, candles
):
    # given: 1000 XRP short at leverage 3 from the first candle's open
    account, prices, paper = paper_at_entry(exchange_account_factory, candles, leverage=3)
    order = paper.create_perp_order(XRP, "market", "sell", Decimal("1000"))
    entry = Decimal(str(order["average"]))
    assert entry == candles[0].open
    free_after_open = free_usdt(account)
    # when: every candle settled, twice (the second changes nothing)
    prices.now = candles[-1].open_time + HOUR
    assert paper.settle_perps(XRP, candles) == []
    paper.settle_perps(XRP, candles)
    # then
    expected = reference_funding(-1, Decimal(1000), candles[0].open_time, candles[-1].open_time)
    assert len(expected) >= 10
    assert {MarkCandle.objects.filter(**KEY, open_time=t).count() for t, _ in expected} == {1, 2}
    total = sum(payment for _, payment in expected)
    position = PaperPosition.objects.get(account=account, symbol=XRP)
    assert position.funding == total
    assert position.last_funding_ms == expected[-1][0]
    assert free_usdt(account) == free_after_open + total
    assert total > 0  # the sample's rates are mostly positive: shorts receive


def reference_liquidation(candles, entry, leverage):
    """(open time, price) of the first candle whose mark (else trade) low reaches a long's
    liquidation price."""
    exact = entry * (1 - Decimal(1) / leverage) / (1 - Decimal("0.005"))
    price = (exact / Decimal("0.0001")).to_integral_value(rounding=ROUND_CEILING) * Decimal(
        "0.0001"
    )
    for candle in candles:
        mark = MarkCandle.objects.filter(**KEY, timeframe="1h", open_time=candle.open_time).first()
        low = mark.low if mark is not None else candle.low
        if low <= price:
            return candle.open_time, price
    raise AssertionError("the sample never reaches the liquidation price")


@pytest.mark.parametrize(
    ("start", "funding_times"),
    [
        (52, 2),  # 2021-11-17 04:00: two funding times before the liquidation
        (72, 1),  # 2021-11-18 00:00, a funding time itself: not charged at the entry
    ],
)
def test_a_long_at_leverage_50_is_liquidated_where_the_reference_loop_says(
    exchange_account_factory, candles, start, funding_times
):
    # given: 1000 XRP long at leverage 50 from the open of candle ``start``
    candles = candles[start:]
    account, prices, paper = paper_at_entry(exchange_account_factory, candles, leverage=50)
    order = paper.create_perp_order(XRP, "market", "buy", Decimal("1000"))
    entry = Decimal(str(order["average"]))
    margin, free_after_open = PaperPosition.objects.get(account=account).margin, free_usdt(account)
    # when
    prices.now = candles[-1].open_time + HOUR
    [liquidation] = paper.settle_perps(XRP, candles)
    # then: at the reference's candle and price, after the funding times before it
    at, price = reference_liquidation(candles, entry, 50)
    assert (liquidation["timestamp"], Decimal(str(liquidation["average"]))) == (at, price)
    assert liquidation["info"]["reason"] == "liquidation"
    payments = reference_funding(1, Decimal(1000), candles[0].open_time, at)
    assert len(payments) == funding_times
    funding = sum(payment for _, payment in payments)
    pnl = (price - entry) * 1000
    fee = (price * 1000 * Decimal("0.0006")).quantize(TWELVE)
    assert free_usdt(account) == free_after_open + funding + margin + pnl - fee
    position = PaperPosition.objects.get(account=account)
    assert (position.side, position.funding, position.realized_pnl) == ("flat", funding, pnl)
