"""The live adapter, offline: Bitget's recorded traffic replayed through ccxt's real request
building, signing, response parsing and error handling; only the HTTP transport is replaced.
Any request a test did not arrange for fails the test.
"""

from __future__ import annotations

import logging
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
import requests

from markets.exchanges import errors
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.markets import MarketCatalog
from tests.markets.ccxt_replay import (
    API_KEY,
    PASSWORD,
    SECRET,
    FakeFetch,
    StubAdapter,
    answer,
    block_network,
    case_id,
    differences,
    raising,
    recorded_markets,
    request_cases,
    request_skip_keys,
    response_cases,
    response_file_options,
    spot_ticker_response,
)
from tradingbot.logconfig import JsonFormatter, TextFormatter

RESPONSE_METHODS = (
    "createOrder", "fetchOpenOrders", "fetchBalance", "fetchOHLCV", "fetchTicker", "cancelOrder",
)  # fmt: skip
RESPONSE_CASES = [
    pytest.param(method, case, id=f"{method}: {case_id(case)}")
    for method in RESPONSE_METHODS
    for case in response_cases(method)
]
REQUEST_CASES = [
    pytest.param(method, case, id=f"{method}: {case_id(case)}")
    for method in ("createOrder", "cancelOrder")
    for case in request_cases(method)
]
# Recorded inputs our interface refuses on purpose, before any request.
REFUSED_BY_DESIGN = {
    # ccxt's ``cost`` param with amount 0: our create_order takes the amount in the base currency
    # (it is what the minimum checks read) and refuses a non-positive one.
    "Spot create market buy order using the cost param": errors.InvalidOrderError,
}
LAST_PRICE = Decimal("73369.13")  # the recorded ticker's last price
ORDER_PLACED = {"code": "00000", "msg": "success", "requestTime": 1700000000000,
                "data": {"orderId": "1000000000000000001", "clientOid": "recorded"}}  # fmt: skip
# Credentials distinctive enough to be found anywhere they leak.
LIVE_KEY = "bg_live_key_5a7c1e90"
LIVE_SECRET = "s3cr3t-value-9b2d44"
LIVE_PASSPHRASE = "pass-phrase-77f1"


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


@pytest.fixture
def catalog() -> MarketCatalog:
    return MarketCatalog("bitget", recorded_markets())


@pytest.fixture
def exchange(catalog: MarketCatalog) -> CcxtExchange:
    """Signed in with the recorded cases' credentials, in the recorded account mode (not UTA)."""
    exchange = CcxtExchange(
        "bitget", api_key=API_KEY, secret=SECRET, password=PASSWORD, catalog=catalog
    )
    exchange.client.extend_exchange_options(response_file_options())
    return exchange


@pytest.fixture
def live(catalog: MarketCatalog) -> CcxtExchange:
    """As from a real account: distinctive credentials, account mode left for ccxt to detect."""
    return CcxtExchange(
        "bitget", api_key=LIVE_KEY, secret=LIVE_SECRET, password=LIVE_PASSPHRASE, catalog=catalog
    )


def decimal_or_none(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def call_recorded(exchange: CcxtExchange, method: str, args: list[Any]) -> Any:
    """Call our method with a recorded ccxt input, converted to our signature."""

    def arg(i: int) -> Any:
        return args[i] if i < len(args) else None

    if method == "createOrder":
        return exchange.create_order(
            arg(0), arg(1), arg(2), Decimal(str(arg(3))), decimal_or_none(arg(4)), params=arg(5)
        )
    if method == "cancelOrder":
        return exchange.cancel_order(arg(0), arg(1), params=arg(2))
    if method == "fetchOpenOrders":
        assert (arg(1), arg(2)) == (None, None), "our fetch_open_orders has no since/limit"
        return exchange.fetch_open_orders(arg(0), params=arg(3))
    if method == "fetchBalance":
        return exchange.fetch_balance(params=arg(0))
    if method == "fetchOHLCV":
        return exchange.fetch_ohlcv(arg(0), arg(1), arg(2), arg(3), params=arg(4))
    if method == "fetchTicker":
        return exchange.fetch_ticker(arg(0), params=arg(1))
    raise AssertionError(f"no conversion for {method}")


def secrets_absent(*texts: str) -> bool:
    joined = "\n".join(texts)
    return not any(s in joined for s in (LIVE_KEY, LIVE_SECRET, LIVE_PASSPHRASE))


def formatted(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as the project's text and JSON log lines, extras included."""
    return "\n".join(
        f.format(record) for record in caplog.records for f in (TextFormatter(), JsonFormatter())
    )


def bitget_error(code: str, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "requestTime": 1711648951774, "data": None}


# -- recorded responses --------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "case"), RESPONSE_CASES)
def test_it_parses_every_recorded_bitget_answer_as_ccxt_does(
    exchange: CcxtExchange, method: str, case: dict[str, Any]
) -> None:
    # given: Bitget answers with the recorded body (a market order without a price asks the
    # swap ticker first, for the minimum-cost check)
    routes = {} if method == "fetchTicker" else {"/mix/market/ticker?": spot_ticker_response()}
    fetch = FakeFetch(default=case["httpResponse"], routes=routes).install(exchange.client)
    # when
    result = call_recorded(exchange, method, case["input"])
    # then: the result is what ccxt recorded, field by field (``info`` aside)
    assert differences(result, case["parsedResponse"]) == []
    if method == "fetchOHLCV":
        assert result == case["parsedResponse"]
    assert fetch.sent, "the call went through ccxt's HTTP layer"


def test_it_returns_balances_free_used_and_total(exchange: CcxtExchange) -> None:
    # given
    case = next(c for c in response_cases("fetchBalance") if c["input"] == [])
    FakeFetch(default=case["httpResponse"]).install(exchange.client)
    # when
    balance = exchange.fetch_balance()
    # then
    expected = case["parsedResponse"]
    currencies = [code for code in expected if code not in ("info", "free", "used", "total")]
    assert currencies
    for code in currencies:
        assert {k: balance[code][k] for k in ("free", "used", "total")} == {
            k: expected[code][k] for k in ("free", "used", "total")
        }


def test_it_values_a_market_order_at_the_last_price_before_sending(
    exchange: CcxtExchange,
) -> None:
    # given
    fetch = FakeFetch(default=ORDER_PLACED, routes={"/market/tickers?": spot_ticker_response()})
    fetch.install(exchange.client)
    # when: a spot market buy without a price
    exchange.create_order("BTC/USDT", "market", "buy", Decimal("0.001"))
    # then: ticker first, then the order, sized in USDT at the last price (Bitget's market buy)
    assert [r.path for r in fetch.sent] == [
        "/api/v2/spot/market/tickers",
        "/api/v2/spot/trade/place-order",
    ]
    body = fetch.sent[1].json()
    assert body["orderType"] == "market"
    expected = (Decimal("0.001") * LAST_PRICE).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    assert Decimal(body["size"]) == expected


# -- recorded requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "case"), REQUEST_CASES)
def test_it_sends_the_request_bitget_expects(
    exchange: CcxtExchange, method: str, case: dict[str, Any]
) -> None:
    # given: as in ccxt's harness, where the account-mode probe fails and leaves uta off
    fetch = FakeFetch(default=ORDER_PLACED, routes={"/market/ticker": spot_ticker_response()})
    fetch.install(exchange.client)
    refused = REFUSED_BY_DESIGN.get(case["description"])
    if refused is not None:
        # when / then: refused before any request
        with pytest.raises(refused):
            call_recorded(exchange, method, case["input"])
        assert fetch.sent == []
        return
    # when
    call_recorded(exchange, method, case["input"])
    # then: the last request is the order call, with the recorded URL and JSON body
    sent = fetch.sent[-1]
    assert sent.method == "POST"
    assert sent.url == case["url"]
    skip = set(request_skip_keys())
    body = {k: v for k, v in sent.json().items() if k not in skip}
    assert body == {k: v for k, v in case["output"].items() if k not in skip}
    # and any earlier request was the ticker, for a market order without a price
    assert all("/market/ticker" in r.path for r in fetch.sent[:-1])


# -- rounding and minimums -----------------------------------------------------------------------


def test_it_rounds_amount_down_and_price_to_the_tick_before_sending(
    exchange: CcxtExchange,
) -> None:
    # given
    fetch = FakeFetch(default=ORDER_PLACED).install(exchange.client)
    # when
    exchange.create_order(
        "BTC/USDT", "limit", "buy", Decimal("0.0012345678"), Decimal("25000.006"),
        client_order_id="bot-7-a1b2",
    )  # fmt: skip
    # then: amount truncated to the 0.000001 step, price to 0.01, our id as Bitget's clientOid
    assert len(fetch.sent) == 1
    body = fetch.sent[0].json()
    assert (body["size"], body["price"]) == ("0.001234", "25000.01")
    assert body["clientOid"] == "bot-7-a1b2"


def test_it_refuses_an_order_below_the_minimum_cost_without_any_request(
    live: CcxtExchange,
) -> None:
    # given: a transport that records whatever reaches it
    adapter = StubAdapter(answer(200, ORDER_PLACED)).mount_on(live.client.session)
    # when: 0.00001 BTC at 25000 is 0.25 USDT
    with pytest.raises(errors.BelowMinimumError) as caught:
        live.create_order("BTC/USDT", "limit", "buy", Decimal("0.00001"), Decimal("25000"))
    # then
    assert "minimum cost of 1 USDT" in caught.value.message
    assert caught.value.status == 400
    assert adapter.requests == []


def test_it_refuses_a_small_market_order_after_asking_only_the_ticker(
    exchange: CcxtExchange,
) -> None:
    # given
    fetch = FakeFetch(routes={"/market/tickers?": spot_ticker_response()})
    fetch.install(exchange.client)
    # when: 0.00001 BTC at the last price (about 0.73 USDT)
    with pytest.raises(errors.BelowMinimumError, match="minimum cost of 1 USDT"):
        exchange.create_order("BTC/USDT", "market", "sell", Decimal("0.00001"))
    # then
    assert [r.path for r in fetch.sent] == ["/api/v2/spot/market/tickers"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "stop"}, "order type"),
        ({"side": "long"}, "order side"),
        ({"price": None}, "needs a price"),
        ({"amount": Decimal(0)}, "positive"),
    ],
)
def test_it_refuses_a_malformed_order_without_any_request(
    live: CcxtExchange, kwargs: dict[str, Any], message: str
) -> None:
    adapter = StubAdapter(answer(200, ORDER_PLACED)).mount_on(live.client.session)
    order = {"symbol": "BTC/USDT", "type": "limit", "side": "buy", "amount": Decimal("0.001"),
             "price": Decimal("25000"), **kwargs}  # fmt: skip
    with pytest.raises(errors.InvalidOrderError, match=message):
        live.create_order(**order)
    assert adapter.requests == []


@pytest.mark.parametrize(
    "call",
    [
        lambda ex: ex.create_order("NOPE/USDT", "limit", "buy", Decimal(1), Decimal(1)),
        lambda ex: ex.fetch_ticker("NOPE/USDT"),
        lambda ex: ex.fetch_ohlcv("NOPE/USDT", "1h"),
        lambda ex: ex.cancel_order("1", "NOPE/USDT"),
        lambda ex: ex.fetch_order("1", "NOPE/USDT"),
        lambda ex: ex.fetch_open_orders("NOPE/USDT"),
        lambda ex: ex.market_rules("NOPE/USDT"),
    ],
    ids=["create_order", "fetch_ticker", "fetch_ohlcv", "cancel_order", "fetch_order",
         "fetch_open_orders", "market_rules"],
)  # fmt: skip
def test_it_refuses_an_unknown_symbol_without_any_request(live: CcxtExchange, call: Any) -> None:
    adapter = StubAdapter(answer(200, ORDER_PLACED)).mount_on(live.client.session)
    with pytest.raises(errors.UnknownSymbolError) as caught:
        call(live)
    assert caught.value.status == 400
    assert adapter.requests == []


# -- orders by client id -------------------------------------------------------------------------


def test_it_fetches_an_order_by_our_client_order_id(exchange: CcxtExchange) -> None:
    # given
    order = {"symbol": "BTCUSDT", "orderId": "1111461743123927040", "clientOid": "bot-7-a1b2",
             "price": "25000", "size": "0.0002", "orderType": "limit", "side": "buy",
             "status": "live", "priceAvg": "0", "baseVolume": "0", "quoteVolume": "0",
             "cTime": "1700719050198", "uTime": "1700719050198"}  # fmt: skip
    fetch = FakeFetch(default={"code": "00000", "msg": "success", "data": [order]})
    fetch.install(exchange.client)
    # when
    result = exchange.fetch_order(None, "BTC/USDT", client_order_id="bot-7-a1b2")
    # then: asked by clientOid, not by order id
    sent = fetch.sent[0]
    assert sent.path == "/api/v2/spot/trade/orderInfo"
    assert "clientOid=bot-7-a1b2" in sent.url
    assert "orderId" not in sent.url
    assert (result["id"], result["clientOrderId"], result["status"]) == (
        "1111461743123927040", "bot-7-a1b2", "open",
    )  # fmt: skip


def test_it_reports_an_order_bitget_does_not_have_as_not_found(live: CcxtExchange) -> None:
    StubAdapter(
        answer(400, bitget_error("40109", "The data of the order cannot be found"))
    ).mount_on(live.client.session)
    with pytest.raises(errors.OrderNotFoundError) as caught:
        live.fetch_order("123", "BTC/USDT:USDT")
    assert caught.value.status == 404


def test_it_reports_an_empty_order_lookup_as_not_found(exchange: CcxtExchange) -> None:
    FakeFetch(default={"code": "00000", "msg": "success", "data": []}).install(exchange.client)
    with pytest.raises(errors.OrderNotFoundError):
        exchange.fetch_order(None, "BTC/USDT", client_order_id="never-placed")


def test_it_needs_an_order_id_or_a_client_order_id(live: CcxtExchange) -> None:
    adapter = StubAdapter(answer(200, {})).mount_on(live.client.session)
    with pytest.raises(errors.InvalidOrderError):
        live.fetch_order(None, "BTC/USDT")
    assert adapter.requests == []


# -- errors, through Bitget's own error handling -------------------------------------------------


def test_it_maps_insufficient_balance(live: CcxtExchange) -> None:
    StubAdapter(answer(400, bitget_error("43012", "Insufficient balance"))).mount_on(
        live.client.session
    )
    with pytest.raises(errors.InsufficientFundsError) as caught:
        live.create_order("BTC/USDT", "limit", "buy", Decimal("0.001"), Decimal("25000"))
    assert caught.value.status == 400
    assert caught.value.code == "insufficient_funds"
    assert "Insufficient balance" in caught.value.message
    assert caught.value.transient is False


@pytest.mark.parametrize(
    ("code", "msg"),
    [
        ("40037", "Apikey does not exist"),
        ("40006", "Invalid ACCESS_KEY"),
        ("40012", "apikey/password is incorrect"),
        ("40014", "Incorrect permissions"),  # PermissionDenied
    ],
)
def test_it_maps_a_rejected_api_key_without_leaking_any_credential(
    live: CcxtExchange, caplog: pytest.LogCaptureFixture, code: str, msg: str
) -> None:
    # given: an exchange that echoes the credentials back in its error message
    caplog.set_level(logging.DEBUG)
    echoed = f"{msg}: key={LIVE_KEY} secret={LIVE_SECRET} passphrase={LIVE_PASSPHRASE}"
    adapter = StubAdapter(answer(400, bitget_error(code, echoed))).mount_on(live.client.session)
    # when
    with pytest.raises(errors.ExchangeAuthError) as caught:
        live.fetch_balance()
    # then: the credentials did go out (signed headers), and come back nowhere
    assert adapter.requests[-1].headers["ACCESS-KEY"] == LIVE_KEY
    error = caught.value
    assert error.message == "exchange rejected the API key"
    assert error.status == 400
    assert secrets_absent(str(error), repr(error), error.message, repr(error.details))
    assert error.__cause__ is None
    assert error.__suppress_context__  # ccxt's message never shows in a traceback
    assert secrets_absent(caplog.text, formatted(caplog))
    warnings = [r for r in caplog.records if r.name == "markets.exchanges.ccxt_exchange"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert warnings[0].exchange_code == code
    assert warnings[0].method == "fetch_balance"
    assert "[scrubbed]" in warnings[0].exchange_message


def test_it_scrubs_credentials_from_what_the_exchange_said(
    live: CcxtExchange, caplog: pytest.LogCaptureFixture
) -> None:
    said = f"order rejected for {LIVE_KEY} / {LIVE_PASSPHRASE}"
    StubAdapter(answer(400, bitget_error("45110", said))).mount_on(live.client.session)
    with pytest.raises(errors.InvalidOrderError) as caught:
        live.create_order("BTC/USDT", "limit", "buy", Decimal("0.001"), Decimal("25000"))
    assert "order rejected for [scrubbed] / [scrubbed]" in caught.value.message
    assert secrets_absent(caught.value.message, caplog.text, formatted(caplog))


def test_it_passes_on_what_bitget_said_about_a_refused_order(live: CcxtExchange) -> None:
    StubAdapter(answer(400, bitget_error("45110", "less than the minimum amount 5 USDT"))).mount_on(
        live.client.session
    )
    with pytest.raises(errors.InvalidOrderError) as caught:
        live.create_order("BTC/USDT:USDT", "limit", "buy", Decimal("0.001"), Decimal("25000"))
    assert type(caught.value) is errors.InvalidOrderError
    assert "less than the minimum amount 5 USDT" in caught.value.message
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "handler",
    [
        answer(429, bitget_error("429", "Too Many Requests")),
        answer(400, bitget_error("1001", "The request is too frequent")),
        answer(400, bitget_error("40200", "Server upgrade, please try again later")),
        answer(503, bitget_error("40604", "Server is busy, please try again later")),
        answer(502, {"unexpected": "gateway page"}),
        raising(requests.exceptions.ConnectionError("Connection refused")),
        raising(requests.exceptions.ReadTimeout("Read timed out")),
    ],
    ids=["http-429", "rate-limit-1001", "maintenance-40200", "busy-40604", "bad-gateway",
         "connection-refused", "timeout"],
)  # fmt: skip
def test_it_maps_rate_limits_outages_and_network_trouble_to_transient(
    live: CcxtExchange, handler: Any
) -> None:
    StubAdapter(handler).mount_on(live.client.session)
    with pytest.raises(errors.TransientExchangeError) as caught:
        live.fetch_ticker("BTC/USDT")
    assert caught.value.transient is True
    assert caught.value.status == 503


def test_it_logs_a_transient_outage_once_and_its_end_once(
    live: CcxtExchange, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="markets.exchanges.ccxt_exchange")
    down = StubAdapter(raising(requests.exceptions.ConnectionError("Connection refused")))
    down.mount_on(live.client.session)
    for _ in range(5):
        with pytest.raises(errors.TransientExchangeError):
            live.fetch_ticker("BTC/USDT")
    assert len(down.requests) >= 5  # every try went out ...
    lines = [r for r in caplog.records if r.name == "markets.exchanges.ccxt_exchange"]
    assert [r.levelno for r in lines] == [logging.WARNING]  # ... and one line says so
    StubAdapter(answer(200, spot_ticker_response())).mount_on(live.client.session)
    live.fetch_ticker("BTC/USDT")
    live.fetch_ticker("BTC/USDT")
    lines = [r for r in caplog.records if r.name == "markets.exchanges.ccxt_exchange"]
    assert [r.getMessage() for r in lines[1:]] == ["bitget fetch_ticker answers again"]


def test_it_maps_any_other_exchange_error_to_a_502(live: CcxtExchange) -> None:
    StubAdapter(answer(400, bitget_error("49999", "Something odd"))).mount_on(live.client.session)
    with pytest.raises(errors.ExchangeError) as caught:
        live.fetch_balance()
    assert type(caught.value) is errors.ExchangeError
    assert caught.value.status == 502
    assert caught.value.transient is False
    assert "Something odd" in caught.value.message


def test_it_refuses_private_calls_without_credentials_before_sending(
    catalog: MarketCatalog,
) -> None:
    public = CcxtExchange("bitget", catalog=catalog)
    adapter = StubAdapter(answer(200, {})).mount_on(public.client.session)
    with pytest.raises(errors.ExchangeAuthError, match="no API key"):
        public.fetch_balance()
    assert adapter.requests == []


def test_it_keeps_ccxt_request_logging_quiet_even_at_debug(
    live: CcxtExchange, caplog: pytest.LogCaptureFixture
) -> None:
    # ccxt logs each request's headers (API key, passphrase) at DEBUG
    caplog.set_level(logging.DEBUG)
    adapter = StubAdapter(answer(200, {"code": "00000", "msg": "success", "data": []})).mount_on(
        live.client.session
    )
    live.fetch_open_orders("BTC/USDT")
    assert adapter.requests[-1].headers["ACCESS-KEY"] == LIVE_KEY
    assert secrets_absent(caplog.text, formatted(caplog))


# -- construction --------------------------------------------------------------------------------


def test_it_builds_without_any_network_call(catalog: MarketCatalog) -> None:
    # the autouse fixture fails any request; building and reading rules must not make one
    exchange = CcxtExchange("bitget", api_key=LIVE_KEY, secret=LIVE_SECRET, catalog=catalog)
    assert exchange.exchange_id == "bitget"
    assert exchange.load_markets() is catalog.markets
    assert exchange.market_rules("BTC/USDT").min_cost == Decimal(1)
    assert LIVE_KEY not in repr(exchange)


@pytest.mark.django_db
def test_it_signs_with_the_accounts_decrypted_credentials(exchange_account_factory: Any) -> None:
    # given: a live account, its secrets encrypted at rest
    account = exchange_account_factory(
        mode="live", api_key=LIVE_KEY, api_secret=LIVE_SECRET, passphrase=LIVE_PASSPHRASE
    )
    account.refresh_from_db()
    exchange = CcxtExchange.from_account(account)
    exchange.client.options["uta"] = False
    fetch = FakeFetch(default={"code": "00000", "msg": "success", "data": []})
    fetch.install(exchange.client)
    # when
    exchange.fetch_balance()
    # then: the request carries the key and passphrase, and a signature made with the secret
    headers = fetch.sent[0].headers
    assert headers["ACCESS-KEY"] == LIVE_KEY
    assert headers["ACCESS-PASSPHRASE"] == LIVE_PASSPHRASE
    assert headers["ACCESS-SIGN"]
    assert LIVE_SECRET not in str(headers)
    assert secrets_absent(repr(exchange))


@pytest.mark.django_db
def test_it_serves_public_market_data_without_credentials() -> None:
    exchange = CcxtExchange.public("bitget")
    fetch = FakeFetch(default=spot_ticker_response()).install(exchange.client)
    ticker = exchange.fetch_ticker("BTC/USDT")
    assert ticker["last"] == float(LAST_PRICE)
    assert "ACCESS-KEY" not in (fetch.sent[0].headers or {})
