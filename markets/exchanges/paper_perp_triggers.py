"""A trigger order (stop-loss / take-profit) firing on a perpetual swap of the paper exchange:
it closes the position through the perp module's reduce path (``PaperPerps.reduce_position``),
so the margin, pnl and fee are a reduce-only market order's.

``paper_triggers`` decides when it fires and at what price (the engine's rule); here: the funding
due up to the candle's open is charged first (the engine's P2: a position closed in the candle
at ``t`` pays the funding at ``t``), then the trigger fills ``min(amount, position)``, reduce
only. A trigger whose position is gone (closed, liquidated, or on the other side) is cancelled
with nothing filled, as Bitget cancels a position's TP/SL with the position.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.db import transaction

from markets.exchanges import paper_ledger as ledger
from markets.exchanges import paper_perp_funding as funding
from markets.exchanges.paper_perp import Fill, PaperPerps, position_side
from markets.exchanges.paper_perp_funding import PaperHost
from markets.models import PaperOrder, PaperPosition


def fire_perp(
    paper: Any, pk: int, open_time: int, opened: Decimal,
    price_of: Callable[[PaperOrder], Decimal],
) -> dict[str, Any] | None:  # fmt: skip
    """Fill the swap trigger order ``pk`` in the candle opened at ``open_time`` at ``opened``
    at ``price_of(order)`` (or cancel it when its position is gone); None when it was no longer
    open. A funding time at the candle's open is charged at that open (the mark when no mark
    candle is stored)."""
    host: PaperHost = paper
    perps = PaperPerps(host)
    with transaction.atomic():
        symbol = PaperOrder.objects.values_list("symbol", flat=True).get(pk=pk)
        market = perps.swap_market(symbol)
        rows = ledger.lock_balances(host.account, (market.settle,))
        position = perps._lock_position(symbol)
        order = PaperOrder.objects.select_for_update().get(pk=pk)
        if order.status != PaperOrder.Status.OPEN:
            return None
        bar = funding.Bar(open_time, opened, opened, opened, opened)  # only its open is read
        funding.settle_funding(host, market, position, rows, open_time, (bar,))
        closes = position.side != PaperPosition.Side.FLAT and position.side != position_side(
            order.side
        )
        qty = min(order.amount, position.qty) if closes else Decimal(0)
        if qty <= 0:
            order.status = PaperOrder.Status.CANCELED
        else:
            fill = Fill(side=order.side, qty=qty, price=price_of(order), time=open_time,
                        reduce_only=True)  # fmt: skip
            notional, fee = perps.reduce_position(market, position, rows, fill)
            order.status, order.filled, order.average = PaperOrder.Status.CLOSED, qty, fill.price
            order.cost, order.fee_cost, order.fee_currency = notional, fee, market.settle
            order.last_trade_timestamp = open_time
        order.save()
        position.save()
        ledger.save_balances(host.account, rows)
    return paper._order_dict(order)
