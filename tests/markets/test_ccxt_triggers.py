"""The live adapter's trigger orders (a bot's stop-loss / take-profit), offline: ccxt's real
request building, signing and parsing for Bitget; only ``client.fetch`` is replaced.

Bitget's recorded cases hold no classic-account plan order, so the answers here are HAND-MADE,
shaped after Bitget's v2 API docs and the examples in ccxt's ``bitget.py`` (place-plan-order
answers ``orderId``/``clientOid``; current-plan-order and history-plan-order answer an
``orderList``); each says so where it is used. The requests ccxt builds are checked against the
recorded swap request cases where there is one (``place-tpsl-order``).
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from markets.exchanges import errors
from markets.exchanges.ccxt_exchange import CcxtExchange
from markets.exchanges.markets import MarketCatalog
from tests.markets.ccxt_replay import (
    API_KEY,
    PASSWORD,
    SECRET,
    FakeFetch,
    block_network,
    recorded_markets,
    swap_request_case,
)

CID = "tb7-1700000000-sl"


def ok(data: Any) -> dict[str, Any]:
    return {"code": "00000", "msg": "success", "requestTime": 1700729361609, "data": data}


# HAND-MADE (Bitget v2 place-plan-order / place-tpsl-order answer: the ids only).
PLACED = ok({"orderId": "1111503385931620352", "clientOid": CID})


def plan_order(status: str, **changes: Any) -> dict[str, Any]:
    """HAND-MADE: one spot plan order as current-plan-order / history-plan-order list it
    (the fields of ccxt's documented example, for a market sell stop of 0.01 BTC at 19000),
    placed a minute ago (ccxt keeps only the history of the last 90 days)."""
    placed = str(int(time.time() * 1000) - 60_000)
    return {
        "orderId": "1111503385931620352", "clientOid": CID, "symbol": "BTCUSDT",
        "size": "0.01", "planType": "AMOUNT", "executePrice": "0", "triggerPrice": "19000",
        "status": status, "orderType": "market", "side": "sell", "triggerType": "fill_price",
        "enterPointSource": "API", "cTime": placed, "uTime": placed,
        **changes,
    }  # fmt: skip


def order_list(*orders: dict[str, Any]) -> dict[str, Any]:
    return ok({"nextFlag": False, "idLessThan": "1111503385931620352", "orderList": list(orders)})


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    block_network(monkeypatch)


@pytest.fixture
def exchange() -> CcxtExchange:
    exchange = CcxtExchange(
        "bitget", api_key=API_KEY, secret=SECRET, password=PASSWORD,
        catalog=MarketCatalog("bitget", recorded_markets()),
    )  # fmt: skip
    exchange.client.options["uta"] = False  # the classic account
    return exchange


def test_a_spot_stop_is_a_plan_order_sized_in_base_with_its_rounded_trigger(
    exchange: CcxtExchange,
) -> None:
    fetch = FakeFetch(default=PLACED).install(exchange.client)

    order = exchange.create_trigger_order(
        "BTC/USDT", "stop_market", "sell", Decimal("0.0100004"), Decimal("19000.004"),
        client_order_id=CID,
    )  # fmt: skip

    [sent] = fetch.sent
    assert sent.method == "POST"
    assert sent.path == "/api/v2/spot/trade/place-plan-order"
    body = sent.json()
    assert body["symbol"] == "BTCUSDT"
    assert (body["side"], body["orderType"], body["planType"]) == ("sell", "market", "amount")
    assert (body["size"], body["triggerPrice"]) == ("0.01", "19000")
    assert body["clientOid"] == CID
    assert "executePrice" not in body  # a market order once triggered
    assert (order["id"], order["clientOrderId"]) == ("1111503385931620352", CID)


def test_a_swap_take_profit_is_a_position_tpsl_order_on_the_mark_price(
    exchange: CcxtExchange,
) -> None:
    fetch = FakeFetch(default=PLACED).install(exchange.client)

    exchange.create_trigger_order(
        "LTC/USDT:USDT", "take_profit_market", "sell", Decimal("0.2"), Decimal("100"),
        client_order_id=CID,
    )  # fmt: skip

    [sent] = fetch.sent
    recorded = swap_request_case("createOrder", "limit tk order type 2")  # ccxt's own case
    assert sent.url.split("?")[0] == recorded["url"]
    body = sent.json()
    for key in ("symbol", "marginCoin", "size", "productType", "triggerType", "holdSide",
                "triggerPrice", "planType"):  # fmt: skip
        assert body[key] == recorded["output"][key], key
    assert body["orderType"] == "market"
    assert body["clientOid"] == CID


def test_a_swap_stop_loss_is_pos_loss(exchange: CcxtExchange) -> None:
    fetch = FakeFetch(default=PLACED).install(exchange.client)
    exchange.create_trigger_order(
        "LTC/USDT:USDT", "stop_market", "sell", Decimal("0.2"), Decimal(50)
    )
    body = fetch.sent[0].json()
    assert (body["planType"], body["triggerPrice"], body["holdSide"]) == ("pos_loss", "50", "buy")


def test_a_trigger_below_the_minimum_or_of_another_type_is_refused_before_sending(
    exchange: CcxtExchange,
) -> None:
    fetch = FakeFetch(default=PLACED).install(exchange.client)
    with pytest.raises(errors.BelowMinimumError):  # 0.00005 BTC at 19000 is under 1 USDT
        exchange.create_trigger_order("BTC/USDT", "stop_market", "sell", Decimal("0.00005"),
                                      Decimal(19000))  # fmt: skip
    with pytest.raises(errors.InvalidOrderError):
        exchange.create_trigger_order("BTC/USDT", "limit", "sell", Decimal("0.01"), Decimal(19000))
    assert fetch.sent == []


def test_a_spot_trigger_is_cancelled_through_the_plan_order_endpoint(
    exchange: CcxtExchange,
) -> None:
    # HAND-MADE: Bitget's spot cancel-plan-order answer, as ccxt documents it
    fetch = FakeFetch(default=ok({"result": "success"})).install(exchange.client)
    exchange.cancel_order("1111503385931620352", "BTC/USDT", trigger=True)
    [sent] = fetch.sent
    assert sent.path == "/api/v2/spot/trade/cancel-plan-order"
    assert sent.json() == {"orderId": "1111503385931620352"}


def test_an_open_trigger_is_read_back_by_its_client_id_among_the_open_plan_orders(
    exchange: CcxtExchange,
) -> None:
    other = plan_order("live", orderId="1", clientOid="someone-else")
    routes = {"/current-plan-order": order_list(other, plan_order("live"))}
    fetch = FakeFetch(routes=routes).install(exchange.client)

    order = exchange.fetch_order(None, "BTC/USDT", client_order_id=CID, trigger=True)

    assert [s.path for s in fetch.sent] == ["/api/v2/spot/trade/current-plan-order"]
    assert (order["status"], order["clientOrderId"]) == ("open", CID)
    assert order["triggerPrice"] == 19000.0
    assert order["price"] == 19000.0  # an open trigger carries its price
    assert not order["filled"]


def test_an_executed_trigger_is_found_in_the_history_with_its_fill_assumed_at_the_trigger(
    exchange: CcxtExchange,
) -> None:
    routes = {
        "/current-plan-order": order_list(),
        "/history-plan-order": order_list(plan_order("executed")),
    }
    fetch = FakeFetch(routes=routes).install(exchange.client)

    order = exchange.fetch_order("1111503385931620352", "BTC/USDT", trigger=True)

    assert [s.path for s in fetch.sent][-1] == "/api/v2/spot/trade/history-plan-order"
    assert order["status"] == "closed"
    assert (order["filled"], order["average"]) == (0.01, 19000.0)
    assert order["info"]["fill_assumed"] is True


def test_a_trigger_the_exchange_does_not_know_is_not_found(exchange: CcxtExchange) -> None:
    routes = {"/current-plan-order": order_list(), "/history-plan-order": order_list()}
    FakeFetch(routes=routes).install(exchange.client)
    with pytest.raises(errors.OrderNotFoundError):
        exchange.fetch_order(None, "BTC/USDT", client_order_id=CID, trigger=True)
