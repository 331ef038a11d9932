"""Trigger orders (a bot's stop-loss / take-profit) through ccxt on Bitget: the parameters and
the reading of ccxt's answers. Pure functions, so ``CcxtExchange`` stays a thin layer of calls.

- Spot: a plan order, ccxt's ``triggerPrice`` (``POST /api/v2/spot/trade/place-plan-order``,
  ``planType`` ``amount``, executed as a market order once the last price crosses the trigger).
  Spot has no reduce-only: a sell can only sell what the account holds.
- Swap: a position TP/SL, ccxt's ``stopLossPrice`` / ``takeProfitPrice``
  (``POST /api/v2/mix/order/place-tpsl-order``, ``planType`` ``pos_loss`` / ``pos_profit``,
  reduce-only by nature), triggered on the MARK price (``triggerType`` ``mark_price``, ccxt's
  default), as the engine checks the levels on mark candles.
- Cancel and read back: plan orders live apart from ordinary orders; ccxt reaches them with
  ``trigger: True`` (spot: ``cancel-plan-order``, ``current-plan-order``,
  ``history-plan-order``; swap: ``cancel-plan-order``, and ``orders-plan-pending`` /
  ``orders-plan-history`` with ``planType`` ``profit_loss``). ccxt's
  ``fetchOrder`` does not read plan orders, so one is looked for by its client id among the
  open ones, then among the closed and cancelled ones.
- A plan order that has executed (``executed`` → ccxt ``closed``) carries no fill: the market
  order it set off is a separate order. Until that one is read back (not done yet), the fill
  is booked as the whole amount at the trigger price, fee unknown (0), marked in ``info``
  (``fill_assumed``); the next signal exit or stop reads the balance the exchange really has.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from markets.exchanges.errors import InvalidOrderError

TRIGGER_TYPES = ("stop_market", "take_profit_market")
SWAP_PLAN_TYPE = "profit_loss"  # Bitget's category of position TP/SL orders


def check_trigger_type(type: str) -> None:
    if type not in TRIGGER_TYPES:
        raise InvalidOrderError(
            f"a trigger order is one of {', '.join(TRIGGER_TYPES)}, not {type!r}"
        )


def create_args(
    market: dict[str, Any], type: str, side: str, amount: Decimal, trigger_price: Decimal, *,
    reduce_only: bool, client_order_id: str | None,
) -> tuple[Any, ...]:  # fmt: skip
    """The arguments of ccxt's ``createOrder`` for a trigger order: a market order with the
    trigger parameters (a spot market BUY is sized in quote, so it is valued at the trigger)."""
    if side not in ("buy", "sell"):
        raise InvalidOrderError(f"order side must be buy or sell, not {side!r}")
    params = create_params(market, type, trigger_price, reduce_only=reduce_only)
    if client_order_id is not None:
        params["clientOid"] = client_order_id
    price = float(trigger_price) if side == "buy" and market.get("spot") else None
    return (market["symbol"], "market", side, float(amount), price, params)


def create_params(
    market: dict[str, Any], type: str, trigger_price: Decimal, *, reduce_only: bool
) -> dict[str, Any]:
    """ccxt ``createOrder`` params for a trigger order of ``type`` on ``market``."""
    # A string, as ccxt passes the params on unchanged: Bitget gets the exact rounded price.
    price = f"{trigger_price.normalize():f}"
    if market.get("spot"):
        return {"triggerPrice": price}
    key = "stopLossPrice" if type == "stop_market" else "takeProfitPrice"
    params: dict[str, Any] = {key: price, "oneWayMode": True}
    if reduce_only:
        params["reduceOnly"] = True
    return params


def cancel_params() -> dict[str, Any]:
    """ccxt params that cancel a plan order (spot ``cancel-plan-order`` by ``orderId``; swap
    ``cancel-plan-order`` by ``orderIdList``, whatever its plan type)."""
    return {"trigger": True}


def lookup_params(market: dict[str, Any]) -> dict[str, Any]:
    """ccxt params that list the plan orders (open, and closed or cancelled)."""
    if market.get("spot"):
        return {"trigger": True}
    return {"trigger": True, "planType": SWAP_PLAN_TYPE}


def fetch_trigger(
    client: Any, market: dict[str, Any], id: str | None, client_order_id: str | None
) -> dict[str, Any] | None:
    """The trigger order with that id, open or done, read through ccxt; None when unknown."""
    symbol, lookup = market["symbol"], lookup_params(market)
    found = find(client.fetch_open_orders(symbol, None, None, dict(lookup)), id, client_order_id)
    if found is None:
        history = client.fetch_canceled_and_closed_orders(symbol, None, None, dict(lookup))
        found = find(history, id, client_order_id)
    return None if found is None else with_assumed_fill(dict(found))


def find(
    orders: list[dict[str, Any]], id: str | None, client_order_id: str | None
) -> dict[str, Any] | None:
    """The order of ``orders`` with that exchange id or client id."""
    for order in orders:
        if client_order_id is not None and order.get("clientOrderId") == client_order_id:
            return order
        if id and str(order.get("id")) == id:
            return order
    return None


def with_assumed_fill(order: dict[str, Any]) -> dict[str, Any]:
    """A plan order as the books can take it: its ``price`` the trigger price when it has no
    other, and an executed one's fill assumed (module docstring)."""
    order = dict(order)
    trigger = (
        order.get("triggerPrice") or order.get("stopLossPrice") or order.get("takeProfitPrice")
    )
    if trigger is not None and order.get("price") is None:
        order["price"] = trigger
    if order.get("status") == "closed" and order.get("average") is None and trigger is not None:
        order["filled"] = order.get("filled") or order.get("amount")
        order["average"] = trigger
        info = order.get("info")
        order["info"] = {**(info if isinstance(info, dict) else {}), "fill_assumed": True}
    return order
