"""The paper exchange's perpetual swaps, with numbers checked by hand.

BTC/USDT:USDT in the shipped Bitget snapshot: contract size 1, amount step 0.0001, price step 0.1,
minimum cost 5 USDT, taker fee 0.0006, maximum leverage 125. The reference price is 20000 and the
account's slippage the default 5 bps, so a market buy fills at 20010.0 and a sell at 19990.0.
Funding times are 8 h apart from T0 (2024-01-01 00:00 UTC); maintenance margin rate 0.005 (the
default tier: the tests trade on the snapshot without BTC's recorded tiers, ``UNTIERED``; the
last test trades on the tiers).
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from markets.exchanges import errors
from markets.exchanges.base import PerpExchange, Position
from markets.exchanges.ccxt_swap import TIERS_KEY, position_from_ccxt
from markets.exchanges.markets import MarketCatalog, forget_catalogs, shipped_catalog
from markets.exchanges.paper import PaperExchange
from markets.exchanges.paper_ledger import fund
from markets.exchanges.prices import FixedPrices
from markets.models import Candle, FundingRate, MarkCandle, PaperBalance, PaperOrder, PaperPosition
from tests.markets.ccxt_replay import swap_response_case

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC: a funding time
HOUR = 3_600_000
FUNDING = 8 * HOUR
BTC = "BTC/USDT:USDT"
D = Decimal
UNTIERED = MarketCatalog(
    "bitget",
    {
        symbol: {key: value for key, value in market.items() if key != TIERS_KEY}
        for symbol, market in shipped_catalog("bitget").markets.items()
    },
)


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
def prices():
    return FixedPrices({BTC: D("20000"), "BTC/USDT": D("20000")}, now_ms=T0)


@pytest.fixture
def paper(account, prices):
    return PaperExchange(account, prices=prices, catalog=UNTIERED)


def usdt(account):
    """(free, used) of the account's USDT, as stored."""
    row = PaperBalance.objects.get(account=account, currency="USDT")
    return row.free, row.used


def position(account, symbol=BTC):
    return PaperPosition.objects.get(account=account, symbol=symbol)


def bar(open_time, *, open_=20000, high=20100, low=19900, close=20000):
    """A 1 h OHLCV row as ccxt gives it (floats)."""
    return [open_time, float(open_), float(high), float(low), float(close), 1.0]


def open_long(paper, leverage=10, amount="0.1"):
    """0.1 BTC long at 20010.0: notional 2001, fee 1.2006, margin 200.1 at leverage 10."""
    paper.set_leverage(BTC, leverage)
    return paper.create_perp_order(BTC, "market", "buy", D(amount), client_order_id="open-1")


def open_short(paper, leverage=5):
    """0.1 BTC short at 19990.0: notional 1999, fee 1.1994, margin 399.8 at leverage 5."""
    paper.set_leverage(BTC, leverage)
    return paper.create_perp_order(BTC, "market", "sell", D("0.1"), client_order_id="open-1")


# --- settings ---------------------------------------------------------------------------------


def test_it_is_a_perp_exchange_whose_settings_are_idempotent(paper, account):
    perps: PerpExchange = paper  # mypy checks the interface
    assert perps.set_position_mode_one_way(BTC) is False  # one-way is the only mode
    assert paper.set_margin_mode(BTC, "isolated") is False  # isolated is the only mode
    assert paper.set_leverage(BTC, 1) is False  # the default
    assert paper.set_leverage(BTC, 10) is True
    assert paper.set_leverage(BTC, 10) is False
    # and a new exchange on the same account sees it
    assert (
        PaperExchange(account, prices=paper.prices, catalog=UNTIERED).set_leverage(BTC, 10) is False
    )
    assert position(account).leverage == 10


def test_cross_margin_is_refused_clearly(paper):
    with pytest.raises(errors.InvalidOrderError) as refused:
        paper.set_margin_mode(BTC, "cross")
    assert refused.value.code == "margin_mode_not_supported"
    assert "isolated margin only" in refused.value.message
    with pytest.raises(errors.InvalidOrderError, match="margin mode must be one of"):
        paper.set_margin_mode(BTC, "portfolio")
    with pytest.raises(errors.InvalidOrderError, match="isolated margin only"):
        paper.create_perp_order(BTC, "market", "buy", D("0.1"), margin_mode="cross")
    assert not PaperOrder.objects.exists()


@pytest.mark.parametrize(
    ("symbol", "leverage", "limit"),
    [(BTC, 0, 125), (BTC, 126, 125), ("ETH/USDT:USDT", 101, 100), ("LTC/USDT:USDT", 76, 75)],
)
def test_a_leverage_outside_the_markets_range_is_refused(paper, symbol, leverage, limit):
    with pytest.raises(errors.InvalidLeverageError, match=f"between 1 and {limit}"):
        paper.set_leverage(symbol, leverage)
    assert not PaperPosition.objects.filter(leverage=leverage).exists()


def test_the_leverage_of_an_open_position_cannot_change(paper, account):
    open_long(paper)
    with pytest.raises(errors.InvalidLeverageError) as refused:
        paper.set_leverage(BTC, 20)
    assert refused.value.code == "position_open"
    assert position(account).leverage == 10
    assert paper.set_leverage(BTC, 10) is False  # asking for what is set is still fine


# --- orders -----------------------------------------------------------------------------------


def test_a_buy_opens_a_long_reserving_its_margin_and_paying_the_taker_fee(paper, account):
    # when
    order = open_long(paper)
    # then: 0.1 x 20010.0 = 2001; fee 2001 x 0.0006 = 1.2006; margin 2001 / 10 = 200.1
    assert (order["side"], order["type"], order["status"]) == ("buy", "market", "closed")
    assert (order["average"], order["amount"], order["cost"]) == (20010.0, 0.1, 2001.0)
    assert order["fee"] == {"cost": 1.2006, "currency": "USDT", "rate": 0.0006}
    assert order["reduceOnly"] is False
    assert order["clientOrderId"] == "open-1"
    assert usdt(account) == (D("798.6994"), D("200.1"))
    balance = paper.fetch_balance()
    assert balance["USDT"] == {"free": 798.6994, "used": 200.1, "total": 998.7994}
    # liquidation: 20010 x (1 - 1/10) / (1 - 0.005) = 18099.4974... rounded up to 18099.5
    row = position(account)
    assert (row.side, row.qty, row.entry_price, row.margin) == ("long", D("0.1"), 20010, D("200.1"))
    assert row.liquidation_price == D("18099.5")
    assert row.opened_at_ms == row.last_funding_ms == T0


def test_a_sell_opens_a_short(paper, account):
    order = open_short(paper)
    # 0.1 x 19990.0 = 1999; fee 1.1994; margin 1999 / 5 = 399.8; free 1000 - 401.0 - 0.9994
    assert (order["side"], order["average"], order["cost"]) == ("sell", 19990.0, 1999.0)
    assert usdt(account) == (D("599.0006"), D("399.8"))
    # liquidation: 19990 x (1 + 1/5) / (1 + 0.005) = 23868.6567... rounded down to 23868.6
    row = position(account)
    assert (row.side, row.qty, row.liquidation_price) == ("short", D("0.1"), D("23868.6"))


def test_adding_to_a_long_averages_the_entry_and_adds_margin(paper, account, prices):
    # given
    open_long(paper)
    prices.set_price(BTC, "21000")
    # when: 0.1 more at 21010.5: notional 2101.05, fee 1.26063, margin 210.105
    paper.create_perp_order(BTC, "market", "buy", D("0.1"))
    # then: entry (2001 + 2101.05) / 0.2 = 20510.25; liquidation 20510.25 x 0.9 / 0.995
    # = 18551.98... rounded up to 18552.0
    row = position(account)
    assert (row.qty, row.entry_price, row.margin) == (D("0.2"), D("20510.25"), D("410.205"))
    assert row.liquidation_price == D("18552.0")
    assert usdt(account) == (D("798.6994") - D("211.36563"), D("410.205"))


def test_a_reduce_only_sell_closes_the_long_booking_the_pnl(paper, account, prices):
    # given
    open_long(paper)
    prices.set_price(BTC, "22000")
    # when: sold at 21989.0: pnl 0.1 x (21989 - 20010) = 197.9, fee 2198.9 x 0.0006 = 1.31934
    order = paper.create_perp_order(
        BTC, "market", "sell", D("0.1"), reduce_only=True, client_order_id="close-1"
    )
    # then: free + 200.1 (margin) + 197.9 - 1.31934
    assert order["reduceOnly"] is True
    assert order["average"] == 21989.0
    assert usdt(account) == (D("798.6994") + D("396.68066"), 0)
    row = position(account)
    assert (row.side, row.qty, row.margin, row.entry_price) == ("flat", 0, 0, None)
    assert (row.realized_pnl, row.liquidation_price) == (D("197.9"), None)
    assert paper.fetch_positions() == []


def test_a_partial_close_releases_the_margin_pro_rata(paper, account):
    open_long(paper)
    # sold at 19990.0: pnl 0.04 x (19990 - 20010) = -0.8, fee 799.6 x 0.0006 = 0.47976
    paper.create_perp_order(BTC, "market", "sell", D("0.04"), reduce_only=True)
    row = position(account)
    assert (row.qty, row.margin, row.liquidation_price) == (D("0.06"), D("120.06"), D("18099.5"))
    assert usdt(account) == (D("798.6994") + D("80.04") - D("0.8") - D("0.47976"), D("120.06"))


def test_a_short_is_closed_by_a_buy(paper, account):
    open_short(paper)
    # bought back at 20010.0: pnl -(20010 - 19990) x 0.1 = -2, fee 1.2006
    paper.create_perp_order(BTC, "market", "buy", D("0.1"), reduce_only=True)
    assert usdt(account) == (D("599.0006") + D("399.8") - 2 - D("1.2006"), 0)
    assert position(account).realized_pnl == -2


@pytest.mark.parametrize("opened", [False, True])
def test_a_reduce_only_order_that_would_open_or_add_is_refused_writing_nothing(
    paper, account, opened
):
    # given
    if opened:
        open_long(paper)
    before = (usdt(account), PaperOrder.objects.count())
    # when
    with pytest.raises(errors.InvalidOrderError) as refused:
        paper.create_perp_order(
            BTC, "market", "sell" if not opened else "buy", D("0.1"), reduce_only=True
        )
    # then
    assert refused.value.code == "reduce_only_rejected"
    assert (usdt(account), PaperOrder.objects.count()) == before


def test_an_order_larger_than_the_opposite_position_is_refused(paper, account):
    open_long(paper)
    with pytest.raises(errors.InvalidOrderError) as refused:
        paper.create_perp_order(BTC, "market", "sell", D("0.2"))
    assert refused.value.code == "position_reversal"
    with pytest.raises(errors.InvalidOrderError) as refused:
        paper.create_perp_order(BTC, "market", "sell", D("0.2"), reduce_only=True)
    assert refused.value.code == "reduce_only_rejected"
    assert position(account).qty == D("0.1")


def test_an_opening_without_margin_and_fee_is_refused_writing_nothing(
    exchange_account_factory, prices
):
    # given: 201.30 is needed (margin 200.1 + fee 1.2006)
    account = exchange_account_factory(mode="paper")
    fund(account, {"USDT": D("201.3")})
    paper = PaperExchange(account, prices=prices, catalog=UNTIERED)
    paper.set_leverage(BTC, 10)
    # when
    with pytest.raises(errors.InsufficientFundsError) as refused:
        paper.create_perp_order(BTC, "market", "buy", D("0.1"))
    # then
    assert refused.value.details == {
        "currency": "USDT", "needed": "201.3006", "available": "201.3",
    }  # fmt: skip
    assert usdt(account) == (D("201.3"), 0)
    assert not PaperOrder.objects.exists()
    assert position(account).side == "flat"


def test_spot_orders_keep_the_position_margin_in_used(paper, account):
    # given: 200.1 of margin held
    open_long(paper)
    # when: a spot limit buy reserves 0.01 x 19000 x 1.002 = 190.38, then is cancelled
    order = paper.create_order("BTC/USDT", "limit", "buy", D("0.01"), D("19000"))
    assert usdt(account) == (D("798.6994") - D("190.38"), D("200.1") + D("190.38"))
    paper.cancel_order(order["id"], "BTC/USDT")
    # then
    assert usdt(account) == (D("798.6994"), D("200.1"))


def test_an_order_below_the_minimum_cost_is_refused(paper):
    with pytest.raises(errors.BelowMinimumError, match="minimum cost of 5"):
        paper.create_perp_order(BTC, "market", "buy", D("0.0002"))


def test_a_duplicate_client_order_id_is_refused_as_on_spot(paper, account):
    paper.create_order("BTC/USDT", "market", "buy", D("0.001"), client_order_id="cid-1")
    before = usdt(account)
    with pytest.raises(errors.InvalidOrderError) as refused:
        paper.create_perp_order(BTC, "market", "buy", D("0.1"), client_order_id="cid-1")
    assert refused.value.code == "duplicate_client_order_id"
    assert usdt(account) == before
    assert not PaperPosition.objects.exclude(side="flat").exists()


def test_perp_orders_are_market_orders(paper):
    with pytest.raises(errors.InvalidOrderError, match="market orders only"):
        paper.create_perp_order(BTC, "limit", "buy", D("0.1"), D("19000"))


# --- spot stays spot --------------------------------------------------------------------------


def test_spot_and_inverse_markets_refuse_the_perp_calls_cleanly(paper):
    for call in (
        lambda: paper.set_leverage("BTC/USDT", 5),
        lambda: paper.set_margin_mode("BTC/USDT", "isolated"),
        lambda: paper.set_position_mode_one_way("BTC/USDT"),
        lambda: paper.create_perp_order("BTC/USDT", "market", "buy", D("0.01")),
        lambda: paper.fetch_positions(["BTC/USDT"]),
        lambda: paper.fetch_funding_rate_history("BTC/USDT"),
        lambda: paper.fetch_mark_ohlcv("BTC/USDT", "1h"),
        lambda: paper.settle_perps("BTC/USDT", []),
    ):
        with pytest.raises(errors.InvalidOrderError, match="not a perpetual swap market"):
            call()
    with pytest.raises(errors.InvalidOrderError, match="inverse swap"):
        paper.set_leverage("BTC/USD:BTC", 5)
    with pytest.raises(errors.InvalidOrderError, match="spot markets only"):
        paper.create_order(BTC, "market", "buy", D("0.01"))
    assert not PaperOrder.objects.exists()
    assert not PaperPosition.objects.exists()


# --- positions --------------------------------------------------------------------------------


def test_positions_are_shaped_like_the_live_adapters(paper, prices):
    # given
    open_long(paper)
    prices.set_price(BTC, "20500")
    # when
    [paper_position] = paper.fetch_positions([BTC])
    # then
    assert paper_position == Position(
        symbol=BTC, side="long", contracts=D("0.1"), entry_price=D("20010"),
        mark_price=D("20500"), leverage=D("10"), margin_mode="isolated",
        unrealized_pnl=D("49"), liquidation_price=D("18099.5"), margin=D("200.1"),
        funding=D("0"),  # the paper exchange's own total (the live adapter has none: None)
    )  # fmt: skip
    # and field by field of the same type as the live adapter's, from Bitget's recorded answer
    recorded = swap_response_case("fetchPositions", "Linear position")["parsedResponse"][0]
    live = position_from_ccxt(recorded)
    for field in dataclasses.fields(Position):
        live_value, paper_value = getattr(live, field.name), getattr(paper_position, field.name)
        assert isinstance(paper_value, type(live_value)) or live_value is None, field.name
    assert str(paper_position.contracts) == "0.1"  # no trailing database zeros


def test_fetch_positions_lists_only_open_positions(paper, account):
    paper.set_leverage("ETH/USDT:USDT", 3)  # a flat row with settings only
    assert paper.fetch_positions() == []
    open_long(paper)
    assert [p.symbol for p in paper.fetch_positions()] == [BTC]
    assert paper.fetch_positions(["ETH/USDT:USDT"]) == []


# --- funding ----------------------------------------------------------------------------------


def store_funding(*rates, symbol=BTC):
    """Funding rates at T0 + 8 h, T0 + 16 h, ..."""
    for number, rate in enumerate(rates, start=1):
        FundingRate.objects.create(
            exchange="bitget", symbol=symbol, funding_time=T0 + number * FUNDING, rate=D(rate)
        )


def store_mark(open_time, open_, *, high=None, low=None, timeframe="1h"):
    MarkCandle.objects.create(
        exchange="bitget", symbol=BTC, timeframe=timeframe, open_time=open_time, open=D(open_),
        high=D(high or open_), low=D(low or open_), close=D(open_),
    )  # fmt: skip


def hours(first, last):
    """1 h bars opening at T0 + first h ... T0 + last h."""
    return [bar(T0 + hour * HOUR) for hour in range(first, last + 1)]


@pytest.mark.parametrize(
    ("opener", "rate", "payment"),
    [
        (open_long, "0.0001", "-0.201"),  # 0.1 x 20100 x 0.0001: a long pays a positive rate
        (open_short, "0.0001", "0.201"),  # a short receives it
        (open_short, "-0.0002", "-0.402"),  # and pays a negative one
    ],
)
def test_funding_is_charged_or_paid_at_the_mark_once_across_calls_and_restarts(
    paper, account, prices, opener, rate, payment
):
    # given: the mark price at the funding time is 20100
    opener(paper)
    store_funding(rate)
    store_mark(T0 + FUNDING, "20100")
    free_before = usdt(account)[0]
    prices.now = T0 + 9 * HOUR
    # when
    assert paper.settle_perps(BTC, hours(0, 8)) == []
    # then
    assert usdt(account)[0] == free_before + D(payment)
    assert position(account).funding == D(payment)
    assert position(account).last_funding_ms == T0 + FUNDING
    # and again, and from a new exchange (a restarted process): nothing more
    paper.settle_perps(BTC, hours(0, 8))
    PaperExchange(account, prices=prices, catalog=UNTIERED).settle_perps(BTC, hours(0, 8))
    assert usdt(account)[0] == free_before + D(payment)
    assert position(account).funding == D(payment)


def test_funding_above_the_free_balance_comes_out_of_the_margin(exchange_account_factory, prices):
    # given: a long holding all the account's money as margin and fee (201.3006)
    account = exchange_account_factory(mode="paper")
    fund(account, {"USDT": D("201.4006")})
    paper = PaperExchange(account, prices=prices, catalog=UNTIERED)
    open_long(paper)
    store_funding("0.0005")  # 0.1 x 20000 x 0.0005 = 1 to pay, 0.1 free
    prices.now = T0 + 9 * HOUR
    # when
    paper.settle_perps(BTC, hours(0, 8))
    # then
    assert usdt(account) == (0, D("199.2"))
    assert position(account).funding == -1


def test_a_position_opened_at_a_funding_time_does_not_pay_it(paper, account, prices):
    # given: a rate at T0 itself, when the long opens
    FundingRate.objects.create(exchange="bitget", symbol=BTC, funding_time=T0, rate=D("0.01"))
    open_long(paper)
    prices.now = T0 + 2 * HOUR
    # when
    paper.settle_perps(BTC, hours(0, 1))
    # then
    assert position(account).funding == 0
    assert usdt(account) == (D("798.6994"), D("200.1"))


def test_a_position_closed_at_a_funding_time_pays_it(paper, account, prices):
    # given: no candle passed; the stored trade candle opens at 20200 at the funding time
    open_long(paper)
    store_funding("0.0001")
    Candle.objects.create(
        exchange="bitget", symbol=BTC, timeframe="1h", open_time=T0 + FUNDING, open=D("20200"),
        high=D("20200"), low=D("20200"), close=D("20200"), volume=D("1"),
    )  # fmt: skip
    prices.now = T0 + FUNDING
    # when: closed at the open of the funding time's candle (19990.0)
    order = paper.create_perp_order(BTC, "market", "sell", D("0.1"), reduce_only=True)
    # then: funding 0.1 x 20200 x 0.0001 = 0.202 paid; pnl -2; fee 1.1994
    assert position(account).funding == D("-0.202")
    assert order["timestamp"] == T0 + FUNDING
    assert usdt(account) == (D("798.6994") - D("0.202") + D("200.1") - 2 - D("1.1994"), 0)


def test_funding_without_a_mark_uses_the_trade_candle_at_the_funding_time(paper, account, prices):
    open_long(paper)
    store_funding("0.0001")
    prices.now = T0 + 9 * HOUR
    candles = [*hours(0, 7), bar(T0 + FUNDING, open_=20300)]
    paper.settle_perps(BTC, candles)
    assert position(account).funding == D("-0.203")  # 0.1 x 20300 x 0.0001


@pytest.mark.parametrize(("timeframe", "payment"), [("4h", "-0.202"), ("1h", "-0.2005")])
def test_the_funding_mark_is_the_candles_timeframes_else_the_shortest(
    paper, account, prices, timeframe, payment
):
    # given: three mark series disagreeing at the funding time
    open_long(paper)
    store_funding("0.0001")
    for mark_timeframe, open_ in (("8h", "20500"), ("4h", "20200"), ("15m", "20050")):
        store_mark(T0 + FUNDING, open_, timeframe=mark_timeframe)
    prices.now = T0 + 12 * HOUR
    # when
    paper.settle_perps(BTC, [bar(T0 + FUNDING)], timeframe=timeframe)
    # then: 4h candles use the 4h mark (0.1 x 20200 x 0.0001); 1h ones the shortest, 15m
    assert position(account).funding == D(payment)


def test_funding_and_marks_are_served_up_to_the_market_time(paper, prices):
    store_funding("0.0001", "-0.0002")
    store_mark(T0, "20000")
    store_mark(T0 + HOUR, "20100")
    prices.now = T0 + FUNDING + HOUR
    [rate] = paper.fetch_funding_rate_history(BTC)
    assert (rate["symbol"], rate["fundingRate"], rate["timestamp"]) == (BTC, 0.0001, T0 + FUNDING)
    assert rate["datetime"] == "2024-01-01T08:00:00.000Z"
    prices.now = T0 + 2 * HOUR - 1  # the second mark candle has not closed
    assert paper.fetch_mark_ohlcv(BTC, "1h") == [[T0, 20000.0, 20000.0, 20000.0, 20000.0, None]]
    store_mark(T0, "19990", timeframe="8h")  # the funding interval's candles are served too
    prices.now = T0 + FUNDING
    assert paper.fetch_mark_ohlcv(BTC, "8h") == [[T0, 19990.0, 19990.0, 19990.0, 19990.0, None]]
    with pytest.raises(errors.ExchangeError) as refused:
        paper.fetch_mark_ohlcv(BTC, "7x")
    assert refused.value.code == "unknown_timeframe"


# --- liquidation ------------------------------------------------------------------------------


def test_a_long_is_liquidated_at_its_price_when_a_low_reaches_it(paper, account, prices, caplog):
    # given: liquidation price 18099.5; the first candle stops 0.1 above it
    open_long(paper)
    prices.now = T0 + 3 * HOUR
    assert paper.settle_perps(BTC, [bar(T0, low="18099.6")]) == []
    # when
    [order] = paper.settle_perps(BTC, [bar(T0, low="18099.6"), bar(T0 + HOUR, low=18000)])
    # then: pnl 0.1 x (18099.5 - 20010) = -191.05; fee 1809.95 x 0.0006 = 1.08597
    assert (order["side"], order["average"], order["amount"]) == ("sell", 18099.5, 0.1)
    assert (order["reduceOnly"], order["clientOrderId"]) == (True, None)
    assert order["info"]["reason"] == "liquidation"
    assert order["timestamp"] == T0 + HOUR
    assert order["fee"]["cost"] == 1.08597
    assert usdt(account) == (D("798.6994") + D("200.1") - D("191.05") - D("1.08597"), 0)
    row = position(account)
    assert (row.side, row.qty, row.realized_pnl) == ("flat", 0, D("-191.05"))
    assert PaperOrder.objects.filter(reason="liquidation", client_order_id=None).count() == 1
    [logged] = [r for r in caplog.records if r.getMessage() == "paper.liquidation"]
    assert (logged.order_id, logged.price, logged.symbol) == (order["id"], "18099.5", BTC)
    # and the same candles again liquidate nothing more
    assert paper.settle_perps(BTC, [bar(T0 + HOUR, low=18000)]) == []


def test_a_short_is_liquidated_when_a_high_reaches_its_price(paper, account, prices):
    open_short(paper)  # liquidation price 23868.6
    prices.now = T0 + 2 * HOUR
    [order] = paper.settle_perps(BTC, [bar(T0, high="23868.6")])
    # pnl -0.1 x (23868.6 - 19990) = -387.86; fee 2386.86 x 0.0006 = 1.432116
    assert (order["side"], order["average"]) == ("buy", 23868.6)
    assert usdt(account) == (D("599.0006") + D("399.8") - D("387.86") - D("1.432116"), 0)


def test_the_mark_candle_decides_the_liquidation_when_stored(paper, account, prices):
    # given: the trade candle dips below the liquidation price, its mark candle does not
    open_long(paper)
    store_mark(T0, "20000", high="20100", low="18500")
    store_mark(T0 + HOUR, "20000", high="20100", low="18000")
    prices.now = T0 + 3 * HOUR
    # when / then
    assert paper.settle_perps(BTC, [bar(T0, low=17000)], timeframe="1h") == []
    [order] = paper.settle_perps(BTC, [bar(T0 + HOUR, low=19000)], timeframe="1h")
    assert order["timestamp"] == T0 + HOUR


def test_funding_at_a_candles_open_comes_before_its_liquidation(paper, account, prices):
    # given: a funding time at the open of the candle that liquidates
    open_long(paper)
    store_funding("0.0001")
    prices.now = T0 + 10 * HOUR
    # when
    [order] = paper.settle_perps(BTC, [bar(T0 + FUNDING, open_=20000, low=18000)])
    # then: 0.1 x 20000 x 0.0001 = 0.2 paid first
    assert position(account).funding == D("-0.2")
    assert order["timestamp"] == T0 + FUNDING


def test_candles_not_yet_closed_or_before_the_opening_are_left_alone(paper, account, prices):
    prices.now = T0 + HOUR
    open_long(paper)
    assert paper.settle_perps(BTC, [bar(T0, low=1)], timeframe="1h") == []  # before the open
    assert paper.settle_perps(BTC, [bar(T0 + HOUR, low=1)], timeframe="1h") == []  # not closed
    assert position(account).side == "long"


def test_a_market_with_recorded_tiers_is_liquidated_by_its_own_rate(account, prices):
    # given: the shipped snapshot, where BTC/USDT:USDT carries Bitget's recorded tiers (the
    # first: 0.4 % up to 150,000 USDT, 125x)
    paper = PaperExchange(account, prices=prices)
    paper.set_leverage(BTC, 10)
    # when: a 0.1 BTC long at 20010.0
    paper.create_perp_order(BTC, "market", "buy", D("0.1"))
    # then: 20010 x 0.9 / (1 - 0.004) = 18081.325... rounded up to 18081.4
    assert PaperPosition.objects.get(account=account).liquidation_price == D("18081.4")
