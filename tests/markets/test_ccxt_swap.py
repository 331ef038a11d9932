"""The live adapter's perpetual-swap calls, offline: Bitget's recorded swap traffic
(tests/data/ccxt-bitget-swap) replayed through ccxt's real request building, signing and parsing;
only ``client.fetch`` (or, for errors, the HTTP transport) is replaced.

Hand-made answers (Bitget records none for the classic account) follow Bitget's v2 API docs and
say so where they are used.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from markets import perp
from markets.exchanges import ccxt_swap, errors
from markets.exchanges.base import PerpExchange, Position
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.markets import MarketCatalog, shipped_catalog
from tests.markets.ccxt_replay import (
    API_KEY,
    PASSWORD,
    SECRET,
    FakeFetch,
    SentRequest,
    StubAdapter,
    answer,
    bitget_error_body,
    block_network,
    json_response,
    recorded_markets,
    spot_ticker_response,
    swap_request_case,
    swap_response_case,
)

ACCOUNT_PATH = "/api/v2/mix/account/account"
# Bitget's classic v2 answer to a settings change (hand-made after the docs; the recorded UTA
# answers have the same envelope).
SETTING_CHANGED = {"code": "00000", "msg": "success", "requestTime": 1700000000000, "data": {}}
# Bitget v2 "place order" answer (hand-made: the same shape as the recorded spot order).
ORDER_PLACED = {"code": "00000", "msg": "success", "requestTime": 1700000000000,
                "data": {"orderId": "1000000000000000009", "clientOid": "bot7-o42"}}  # fmt: skip
EMPTY_POSITION = "fetch position"  # recorded: no open position (data: [])
SETTINGS_PATHS = {
    "/api/v2/mix/account/set-position-mode": ("posMode",),
    "/api/v2/mix/account/set-margin-mode": ("marginMode",),
    "/api/v2/mix/account/set-leverage": (
        "crossedMarginLeverage", "isolatedLongLever", "isolatedShortLever",
    ),
}  # fmt: skip


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


@pytest.fixture
def exchange() -> CcxtExchange:
    exchange = CcxtExchange(
        "bitget",
        api_key=API_KEY,
        secret=SECRET,
        password=PASSWORD,
        catalog=MarketCatalog("bitget", recorded_markets()),
    )
    exchange.client.options["uta"] = False  # the classic account, as the recordings
    return exchange


class SwapAccount:
    """Bitget's futures account settings at the ``client.fetch`` level: answers the settings
    read with a recorded ``/account/account`` answer and applies the settings changes to it."""

    def __init__(self, method: str, description: str) -> None:
        self.answer = copy.deepcopy(swap_response_case(method, description)["httpResponse"])
        self.sent: list[SentRequest] = []

    def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        request = SentRequest(url, method, dict(headers or {}), body)
        self.sent.append(request)
        if request.path == ACCOUNT_PATH:
            return copy.deepcopy(self.answer)
        sent, settings = request.json(), self.answer["data"]
        for key in SETTINGS_PATHS[request.path]:
            settings[key] = sent["leverage" if "Lever" in key else key]
        return SETTING_CHANGED

    def posts(self) -> list[SentRequest]:
        return [r for r in self.sent if r.method == "POST"]


def install(exchange: CcxtExchange, method: str, description: str) -> SwapAccount:
    account = SwapAccount(method, description)
    exchange.client.fetch = account
    return account


def assert_sent_as_recorded(sent: SentRequest, method: str, description: str) -> None:
    case = swap_request_case(method, description)
    assert sent.method == "POST"
    assert sent.url == case["url"]
    assert sent.json() == case["output"]
    assert sent.headers["ACCESS-KEY"] == API_KEY
    assert sent.headers["ACCESS-SIGN"]


def test_the_live_adapter_is_a_perp_exchange(exchange: CcxtExchange) -> None:
    perp: PerpExchange = exchange
    assert perp.exchange_id == "bitget"


# -- settings: idempotent ------------------------------------------------------------------------


def test_settings_already_in_force_send_nothing(exchange: CcxtExchange) -> None:
    # Recorded: one-way mode, cross margin, leverage 10 on BTC/USDT:USDT.
    account = install(exchange, "fetchLeverage", "fetch leverage")

    assert exchange.set_position_mode_one_way("BTC/USDT:USDT") is False
    assert exchange.set_margin_mode("BTC/USDT:USDT", "cross") is False
    assert exchange.set_leverage("BTC/USDT:USDT", 10) is False

    assert account.posts() == []
    assert [r.path for r in account.sent] == [ACCOUNT_PATH] * 3
    assert account.sent[0].query == {
        "symbol": "BTCUSDT", "marginCoin": "USDT", "productType": "USDT-FUTURES",
    }  # fmt: skip


def test_set_position_mode_one_way_then_again(exchange: CcxtExchange) -> None:
    account = install(exchange, "fetchMarginMode", "fetch linear swap margin mode")  # hedge_mode

    assert exchange.set_position_mode_one_way("LTC/USDT:USDT") is True
    assert exchange.set_position_mode_one_way("LTC/USDT:USDT") is False

    [post] = account.posts()
    # The recorded request is hedge mode (true); one-way sends the same call with one_way_mode.
    case = swap_request_case("setPositionMode", "Set linear position mode to dual side")
    assert post.url == case["url"]
    assert post.json() == {**case["output"], "posMode": "one_way_mode"}


def test_set_margin_mode_isolated_then_again(exchange: CcxtExchange) -> None:
    account = install(exchange, "fetchMarginMode", "fetch linear swap margin mode")  # crossed

    assert exchange.set_margin_mode("LTC/USDT:USDT", "isolated") is True
    assert exchange.set_margin_mode("LTC/USDT:USDT", "isolated") is False

    [post] = account.posts()
    assert_sent_as_recorded(post, "setMarginMode", "Set margin mode to isolated")


def test_set_leverage_then_again(exchange: CcxtExchange) -> None:
    account = install(exchange, "fetchMarginMode", "fetch linear swap margin mode")  # 10x

    assert exchange.set_leverage("ADA/USDT:USDT", 15) is True
    assert exchange.set_leverage("ADA/USDT:USDT", 15) is False
    assert exchange.set_leverage("ADA/USDT:USDT", 5) is True

    first, second = account.posts()
    assert_sent_as_recorded(first, "setLeverage", "Set linear leverage")
    assert second.json()["leverage"] == "5"


@pytest.mark.parametrize("leverage", [0, 76, 2.5])
def test_a_leverage_out_of_the_market_range_is_refused_before_sending(
    exchange: CcxtExchange, leverage: Any
) -> None:
    fetch = FakeFetch().install(exchange.client)
    with pytest.raises(errors.InvalidLeverageError):
        exchange.set_leverage("LTC/USDT:USDT", leverage)  # LTC: at most 75x
    assert fetch.sent == []


def test_settings_on_a_spot_market_are_refused(exchange: CcxtExchange) -> None:
    fetch = FakeFetch().install(exchange.client)
    with pytest.raises(errors.InvalidOrderError, match="not a perpetual swap"):
        exchange.set_margin_mode("BTC/USDT", "isolated")
    with pytest.raises(errors.InvalidOrderError, match="margin mode"):
        exchange.set_margin_mode("BTC/USDT:USDT", "portfolio")
    assert fetch.sent == []


# -- orders --------------------------------------------------------------------------------------


def test_open_long_limit_sends_isolated_one_way_order_with_client_oid(
    exchange: CcxtExchange,
) -> None:
    fetch = FakeFetch(default=ORDER_PLACED).install(exchange.client)

    order = exchange.create_perp_order(
        "BTC/USDT:USDT", "limit", "buy", Decimal("0.001"), Decimal("40000"),
        client_order_id="bot7-o42",
    )  # fmt: skip

    [sent] = fetch.sent
    case = swap_request_case("createOrder", "Swap oneWayMode limit buy order")
    assert (sent.method, sent.url) == ("POST", case["url"])
    assert sent.json() == {**case["output"], "clientOid": "bot7-o42"}
    assert "reduceOnly" not in sent.json()
    assert "tradeSide" not in sent.json()
    assert (order["id"], order["clientOrderId"]) == ("1000000000000000009", "bot7-o42")


@pytest.mark.parametrize(
    ("reduce_only", "expected"), [(False, "open short"), (True, "reduce-only close")]
)
def test_market_sell_opens_a_short_or_only_closes(
    exchange: CcxtExchange, reduce_only: bool, expected: str
) -> None:
    fetch = FakeFetch(default=ORDER_PLACED).install(exchange.client)

    exchange.create_perp_order(
        "BTC/USDT:USDT", "market", "sell", Decimal("0.001"), Decimal("73000"),
        reduce_only=reduce_only, client_order_id="bot7-o43",
    )  # fmt: skip

    [sent] = fetch.sent
    case = swap_request_case("createOrder", "Swap oneWayMode market sell order with reduceOnly")
    body = {**case["output"], "clientOid": "bot7-o43"}
    if not reduce_only:
        del body["reduceOnly"]
    assert sent.url == case["url"]
    assert sent.json() == body, expected


def test_market_order_without_a_price_is_valued_at_the_swap_ticker(
    exchange: CcxtExchange,
) -> None:
    # The recorded spot ticker answer (BTCUSDT, last 73369.13) stands in for the swap ticker:
    # Bitget's v2 mix ticker carries the same fields (lastPr...).
    routes = {"/api/v2/mix/market/ticker": spot_ticker_response()}
    fetch = FakeFetch(default=ORDER_PLACED, routes=routes).install(exchange.client)

    exchange.create_perp_order("BTC/USDT:USDT", "market", "buy", Decimal("0.001"))

    ticker, order = fetch.sent
    assert ticker.method == "GET"
    assert ticker.query == {"symbol": "BTCUSDT", "productType": "USDT-FUTURES"}
    assert order.path == "/api/v2/mix/order/place-order"
    assert order.json()["size"] == "0.001"
    assert "price" not in order.json()
    assert (order.json()["marginMode"], order.json()["side"]) == ("isolated", "buy")


def test_insufficient_margin_is_an_insufficient_funds_error(exchange: CcxtExchange) -> None:
    body = bitget_error_body("40762", "The order amount exceeds the balance")
    adapter = StubAdapter(answer(400, body)).mount_on(exchange.client.session)
    with pytest.raises(errors.InsufficientFundsError) as caught:
        exchange.create_perp_order(
            "LTC/USDT:USDT", "limit", "buy", Decimal("1"), Decimal("70"), client_order_id="c1"
        )
    assert caught.value.code == "insufficient_funds"
    assert len(adapter.requests) == 1


# -- errors from the settings calls --------------------------------------------------------------


def test_rejected_key_on_a_settings_call_is_an_auth_error(exchange: CcxtExchange) -> None:
    adapter = StubAdapter(answer(400, bitget_error_body("40037", "Apikey does not exist")))
    adapter.mount_on(exchange.client.session)
    with pytest.raises(errors.ExchangeAuthError):
        exchange.set_leverage("LTC/USDT:USDT", 5)
    assert [r.method for r in adapter.requests] == ["GET"]


def test_leverage_refused_by_the_exchange_is_an_invalid_leverage_error(
    exchange: CcxtExchange,
) -> None:
    account = swap_response_case("fetchMarginMode", "fetch linear swap margin mode")
    # Hand-made after Bitget's v2 error list: 40797 "Exceeded the maximum settable leverage".
    refusal = bitget_error_body("40797", "Exceeded the maximum settable leverage")

    def handler(request: Any) -> Any:
        if request.method == "GET":
            return json_response(request, 200, account["httpResponse"])
        return json_response(request, 400, refusal)

    adapter = StubAdapter(handler).mount_on(exchange.client.session)
    with pytest.raises(errors.InvalidLeverageError) as caught:
        exchange.set_leverage("LTC/USDT:USDT", 50)
    assert (caught.value.code, caught.value.status) == ("invalid_leverage", 400)
    assert [r.method for r in adapter.requests] == ["GET", "POST"]


# -- positions, funding, mark price --------------------------------------------------------------


def test_fetch_positions_parses_the_recorded_position(exchange: CcxtExchange) -> None:
    case = swap_response_case("fetchPositions", "Linear position")
    fetch = FakeFetch(default=case["httpResponse"]).install(exchange.client)

    positions = exchange.fetch_positions(["LTC/USDT:USDT"])

    request = swap_request_case("fetchPositions", "Fetch linear positions")
    [sent] = fetch.sent
    assert (sent.method, sent.url) == ("GET", request["url"])
    assert positions == [
        Position(
            symbol="LTC/USDT:USDT",
            side="long",
            contracts=Decimal("0.1"),
            entry_price=Decimal("72.66"),
            mark_price=Decimal("72.62"),
            leverage=Decimal("5"),
            margin_mode="cross",
            unrealized_pnl=Decimal("-0.004"),
            liquidation_price=None,  # Bitget reported "0"
            margin=Decimal("1.4532"),
        )
    ]


def test_no_open_position_is_an_empty_list(exchange: CcxtExchange) -> None:
    empty = swap_response_case("fetchPosition", EMPTY_POSITION)["httpResponse"]
    assert empty["data"] == []
    FakeFetch(default=empty).install(exchange.client)
    assert exchange.fetch_positions() == []


def test_funding_rate_history(exchange: CcxtExchange) -> None:
    case = swap_response_case(
        "fetchFundingRateHistory", "fetchFundingRate history with a limit argument"
    )
    fetch = FakeFetch(default=case["httpResponse"]).install(exchange.client)

    rates = exchange.fetch_funding_rate_history("BTC/USDT:USDT", limit=1)

    [sent] = fetch.sent
    assert sent.path == "/api/v2/mix/market/history-fund-rate"
    assert sent.query["symbol"] == "BTCUSDT"
    assert sent.query["productType"] == "USDT-FUTURES"
    assert [(r["symbol"], Decimal(str(r["fundingRate"])), r["timestamp"]) for r in rates] == [
        ("BTC/USDT:USDT", Decimal("-0.000013"), 1750435200000)
    ]


def test_mark_price_candles(exchange: CcxtExchange) -> None:
    # The recorded classic mark-candle request; its answer has the shape of the recorded linear
    # candles (Bitget's mark candles are the same rows), replayed here.
    answer_ = swap_response_case("fetchOHLCV", "linear ohlcv")
    fetch = FakeFetch(default=answer_["httpResponse"]).install(exchange.client)

    rows = exchange.fetch_mark_ohlcv("BTC/USDT:USDT", "1h")

    [sent] = fetch.sent
    assert sent.url == swap_request_case("fetchOHLCV", "mark ohlcv")["url"]
    assert rows == answer_["parsedResponse"]


# --- leverage tiers ------------------------------------------------------------------------------


def test_it_reads_the_leverage_tiers_of_a_swap(exchange: CcxtExchange) -> None:
    # given: Bitget's recorded tiers of BTC/USDT:USDT (a unified-account answer, so the client
    # asks the unified account's endpoint, as the recording did)
    case = swap_response_case("fetchMarketLeverageTiers", "uta fetchMarketLeverageTiers")
    exchange.client.options["uta"] = True
    fetch = FakeFetch(default=case["httpResponse"]).install(exchange.client)
    # when
    rows = exchange.fetch_leverage_tiers("BTC/USDT:USDT")
    tiers = ccxt_swap.tiers_from_ccxt(rows)
    # then: eleven tiers, smallest first, the last unbounded, read through ccxt's own parsing
    assert fetch.sent[0].path == "/api/v3/market/position-tier"  # the unified account's
    assert len(tiers) == 11
    assert tiers[0] == perp.MaintenanceTier(Decimal(0), Decimal(150000), Decimal("0.004"), 125)
    assert (tiers[2].maintenance_margin_rate, tiers[2].max_leverage) == (Decimal("0.01"), 50)
    assert tiers[-1].max_notional is None
    assert all("info" not in row for row in rows)
    # and a 1,000,000 USDT position falls in the third tier: at most 50x
    assert perp.tier_for(Decimal(1_000_000), tiers).max_leverage == 50


def test_the_shipped_catalog_carries_the_recorded_tiers() -> None:
    catalog = MarketCatalog("bitget", recorded_markets())
    shipped = shipped_catalog("bitget")
    assert ccxt_swap.market_tiers(shipped.market("BTC/USDT:USDT"))[0].maintenance_margin_rate == (
        Decimal("0.004")
    )
    # a perp without tiers in the data takes the default tier
    assert ccxt_swap.market_tiers(catalog.market("XRP/USDT:USDT")) == perp.DEFAULT_TIERS


@pytest.mark.parametrize(
    "row",
    [
        {"minNotional": 0, "maxNotional": 10, "maintenanceMarginRate": None, "maxLeverage": 5},
        {"minNotional": 0, "maxNotional": 10, "maintenanceMarginRate": 1.5, "maxLeverage": 5},
        {"minNotional": 0, "maxNotional": 10, "maintenanceMarginRate": 0.01, "maxLeverage": 0},
    ],
)
def test_a_tier_that_makes_no_sense_is_refused(row: dict[str, Any]) -> None:
    with pytest.raises(errors.ExchangeError):
        ccxt_swap.tiers_from_ccxt([row])


def test_a_unified_accounts_position_carries_its_funding(exchange: CcxtExchange) -> None:
    # given: Bitget's recorded unified-account position, as it would read after funding was paid
    case = copy.deepcopy(swap_response_case("fetchPositions", "fetchPositions uta"))
    case["httpResponse"]["data"]["list"][0]["totalFunding"] = "-0.0123"
    exchange.client.options["uta"] = True
    FakeFetch(default=case["httpResponse"]).install(exchange.client)
    # when
    [position] = exchange.fetch_positions(["BTC/USDT:USDT"])
    # then: the funding paid, with our sign (negative: paid), next to the rest
    assert (position.side, position.contracts, position.funding) == (
        "long", Decimal("0.001"), Decimal("-0.0123"),
    )  # fmt: skip
