"""The bot's books: orders as the exchange reports them, one trade per fill, the position.

Everything the exchange says about an order goes through :func:`order_apply_result`, which
records only what is NEW since the last report (the filled quantity grows), so reading the same
order twice, or adopting it after a crash, never books a fill twice.

Position accounting of a perpetual swap (long or short, leverage, funding): ``perp_books``.

Position accounting (spot, long only), with fees in quote (a fee charged in the base currency is
valued at the fill price and also reduces the quantity received):

- buy: ``qty += filled``; ``entry_price`` is the quantity-weighted average; the fee is added to
  ``entry_fees``.
- sell: the pro-rata share of ``entry_fees`` leaves with the quantity sold; the trade's ``pnl``
  is ``(price - entry_price) * qty - sell fee - that share``, so a round trip's pnl is net of
  both sides' fees, as the backtest engine counts it. ``Position.pnl`` is their running sum.
- ``unrealized_pnl = qty * (mark - entry_price) - entry_fees``: what closing at the mark would
  add to ``pnl``, before the closing fee.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction

from bots.models import Bot, Order, Position, Trade
from bots.services.perp_books import perp_fill_apply, perp_unrealized
from markets.decimals import finite_decimal
from markets.exchanges.paper_ledger import PLACES

ZERO = Decimal(0)
CCXT_STATUS = {
    "open": Order.Status.OPEN,
    "closed": Order.Status.CLOSED,
    "canceled": Order.Status.CANCELED,
    "cancelled": Order.Status.CANCELED,
    "expired": Order.Status.CANCELED,
    "rejected": Order.Status.REJECTED,
}


# The paper exchange keeps its exact Decimals as strings in ``info`` under these keys; a real
# exchange's ``info`` is its raw answer, whose fields mean other things.
PAPER_INFO = {"filled": "filled", "average": "average", "price": "price", "fee": "fee_cost"}


def _exact(result: dict[str, Any], key: str) -> Decimal | None:
    """A number of a ccxt-shaped result: the paper exchange's exact string when there is one,
    else ccxt's float."""
    info = result.get("info")
    if isinstance(info, dict) and {"order_id", "reserved", "fee_cost"} <= info.keys():
        exact = finite_decimal(info.get(PAPER_INFO[key]))
        if exact is not None:
            return exact
    if key == "fee":
        fee = result.get("fee")
        return finite_decimal(fee.get("cost")) if isinstance(fee, dict) else None
    return finite_decimal(result.get(key))


def _fee_currency(result: dict[str, Any]) -> str:
    fee = result.get("fee")
    return str(fee.get("currency") or "") if isinstance(fee, dict) else ""


def _q(value: Decimal) -> Decimal:
    return value.quantize(PLACES)


def position_of(bot: Bot, *, lock: bool = False) -> Position:
    """The bot's position on its symbol (created flat on first use)."""
    rows = Position.objects.select_for_update() if lock else Position.objects
    try:
        return rows.get(bot=bot, symbol=bot.symbol)
    except Position.DoesNotExist:
        Position.objects.get_or_create(bot=bot, symbol=bot.symbol)
        return rows.get(bot=bot, symbol=bot.symbol)


def order_apply_result(order: Order, result: dict[str, Any], *, base: str) -> list[Trade]:
    """Bring ``order`` up to date with the exchange's ``result`` and book any new fill.

    Locks the position first: the books of one bot change one report at a time.
    """
    with transaction.atomic():
        position = position_of(order.bot, lock=True)
        order = Order.objects.select_for_update().get(pk=order.pk)
        filled = _exact(result, "filled") or ZERO
        new_qty = filled - order.filled_qty
        trades = []
        if new_qty > 0:
            trades.append(_book_fill(order, position, result, new_qty, base=base))
        order.exchange_order_id = str(result.get("id") or order.exchange_order_id)
        order.filled_qty = max(filled, order.filled_qty)
        order.average_price = _exact(result, "average") or order.average_price
        order.status = CCXT_STATUS.get(str(result.get("status")), order.status)
        order.fee = max(_exact(result, "fee") or ZERO, order.fee)
        order.fee_currency = _fee_currency(result) or order.fee_currency
        order.save()
    return trades


def _book_fill(
    order: Order, position: Position, result: dict[str, Any], qty: Decimal, *, base: str
) -> Trade:
    price = _exact(result, "average") or _exact(result, "price") or order.average_price
    if price is None:
        raise ValueError(f"order {order.client_order_id} reports a fill without a price")
    fee_total = _exact(result, "fee") or ZERO
    fee_currency = _fee_currency(result)
    # The fee of this fill: the report's total less what earlier reports of the order booked.
    fee = max(fee_total - order.fee, ZERO)
    received = qty
    if fee_currency == base:
        received = qty - fee
        fee = fee * price
    timestamp = result.get("lastTradeTimestamp") or result.get("timestamp")
    when = datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC) if timestamp else datetime.now(UTC)
    pnl = ZERO
    if ":" in order.symbol:  # a perpetual swap (``perp_books``)
        pnl = perp_fill_apply(position, order.side, qty, price, fee)
    elif order.side == Order.Side.BUY:
        held = position.qty + received
        entry = position.entry_price or ZERO
        position.entry_price = _q((position.qty * entry + received * price) / held)
        position.qty = held
        position.entry_fees = _q(position.entry_fees + fee)
    else:
        sold = min(qty, position.qty)
        share = _q(position.entry_fees * sold / position.qty) if position.qty else ZERO
        entry = position.entry_price or price
        pnl = _q((price - entry) * sold - fee - share)
        position.qty -= sold
        position.entry_fees -= share
        position.pnl = _q(position.pnl + pnl)
        if position.qty <= 0:
            position.qty, position.entry_price, position.entry_fees = ZERO, None, ZERO
    position_mark(position, price, save=False)
    position.save()
    return Trade.objects.create(
        bot=order.bot, order=order, symbol=order.symbol, side=order.side, qty=qty,
        price=price, fee=_q(fee), pnl=pnl, time=when,
    )  # fmt: skip


def position_mark(position: Position, mark: Decimal, *, save: bool = True) -> Position:
    """Value the open quantity at ``mark`` (the last close)."""
    position.mark_price = mark
    if ":" in position.symbol:
        position.unrealized_pnl = perp_unrealized(position, mark)
    elif position.qty > 0 and position.entry_price is not None:
        gain = position.qty * (mark - position.entry_price) - position.entry_fees
        position.unrealized_pnl = _q(gain)
    else:
        position.unrealized_pnl = ZERO
    if save:
        position.save(update_fields=["mark_price", "unrealized_pnl", "updated_at"])
    return position
