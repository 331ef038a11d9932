"""ccxt-shaped results of the paper exchange: what a caller reads instead of a real exchange's."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from markets.models import TRIGGER_ORDER_TYPES, PaperOrder


def fmt_decimal(value: Decimal) -> str:
    """A Decimal as a plain human number: 200.5002, 1, 0.01."""
    return f"{value.normalize():f}" if value else "0"


def iso_time(ms: int | None) -> str | None:
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def text_or_none(value: Decimal | None) -> str | None:
    return None if value is None else fmt_decimal(value)


def order_result(order: PaperOrder, fee_rate: Decimal) -> dict[str, Any]:
    """A ccxt order dict: floats like ccxt, with the exact Decimals as strings under ``info``."""
    price = order.price if order.price is not None else order.average
    fee = {
        "cost": float(order.fee_cost),
        "currency": order.fee_currency,
        "rate": float(fee_rate),
    }
    return {
        "id": str(order.order_id),
        "clientOrderId": order.client_order_id,
        "timestamp": order.timestamp,
        "datetime": iso_time(order.timestamp),
        "lastTradeTimestamp": order.last_trade_timestamp,
        "symbol": order.symbol,
        "type": order.order_type,
        "timeInForce": "GTC" if order.order_type == PaperOrder.Type.LIMIT else "IOC",
        "side": order.side,
        "price": float(price) if price is not None else None,
        "amount": float(order.amount),
        "cost": float(order.cost),
        "average": float(order.average) if order.average is not None else None,
        "filled": float(order.filled),
        "remaining": float(order.amount - order.filled),
        "status": order.status,
        "fee": fee,
        "fees": [dict(fee)],
        "trades": [],
        # A trigger order's ``price`` is its trigger price (ccxt's ``triggerPrice``).
        "triggerPrice": float(order.price)
        if order.order_type in TRIGGER_ORDER_TYPES and order.price is not None
        else None,
        "reduceOnly": order.reduce_only or order.order_type in TRIGGER_ORDER_TYPES,
        "postOnly": False,
        "info": {
            "order_id": str(order.order_id),
            "client_order_id": order.client_order_id,
            "price": text_or_none(order.price),
            "amount": fmt_decimal(order.amount),
            "filled": fmt_decimal(order.filled),
            "average": text_or_none(order.average),
            "cost": fmt_decimal(order.cost),
            "fee_cost": fmt_decimal(order.fee_cost),
            "fee_rate": fmt_decimal(fee_rate),
            "reserved": fmt_decimal(order.reserved),
            "status": order.status,
            "reason": order.reason,
        },
    }
