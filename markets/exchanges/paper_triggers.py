"""Trigger orders on the paper exchange: a bot's stop-loss and take-profit, filled inside the
candle that reaches them, by the backtest engine's rule (``backtests/engine.py``, rule 6).

(Issue 16, "stops where the backtest puts them". ``PaperExchange.create_trigger_order`` /
``match_trigger_orders`` are thin calls in; this module uses the exchange's private helpers so
that ``paper.py`` changes no more than that. On a perpetual swap a trigger closes the position
through the perp module's reduce path: ``paper_perp_triggers``.)

- Placing: ``stop_market`` or ``take_profit_market``, a side, an amount and a trigger price
  (kept in ``PaperOrder.price``, rounded to the price step), checked against the market's rules
  like a limit order at that price. A trigger reserves nothing: a stop and a take-profit for
  the same position both rest on it (the exchange checks the funds when one fires).
- Firing: on the first candle passed to ``match_trigger_orders`` that opens at or after the
  order's timestamp (``open_time >= timestamp``; the candle in which it was placed at its open
  counts, as the engine checks the entry candle) and reaches the trigger price. A sell stop and
  a buy take-profit lie below the price (``low <= trigger``), a buy stop and a sell take-profit
  above (``high >= trigger``).
- Fill price: a stop fills at its trigger price, or at the candle's open when the open is
  already beyond it (a gap: the worse of the two), then the account's slippage; a take-profit
  at its trigger price, or at the open when already beyond it (the better), without slippage.
  Rounded to the price step. Fee: the account's TAKER fee for both (Bitget executes a triggered
  plan order as a market order; the engine has one ``fee_rate``, so a parity run sets maker =
  taker). ``lastTradeTimestamp`` is the open time of the candle that fired it.
- Candles are taken oldest first, and in one candle the stops before the take-profits: when
  both of a position's orders are reached in one candle the stop fills (the engine's
  conservative choice), and the take-profit then finds nothing left to sell.
- One-cancels-the-other is the BOT's job (the tick that finds the fill cancels what is left):
  the exchange knows no pairs. A trigger that fires without the funds to fill (its sibling sold the
  position first) is cancelled with nothing filled, as an exchange refuses the triggered order.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Protocol

from django.db import transaction

from markets.exchanges import paper_ledger as ledger
from markets.exchanges.base import MarketRules
from markets.exchanges.errors import InsufficientFundsError, InvalidOrderError
from markets.exchanges.markets import MarketCatalog
from markets.exchanges.paper_perp_triggers import fire_perp
from markets.exchanges.prices import PriceSource
from markets.models import TRIGGER_ORDER_TYPES, Candle, ExchangeAccount, PaperOrder


class PaperExchange(Protocol):
    """What this module uses of ``markets.exchanges.paper.PaperExchange`` (which imports it)."""

    account: ExchangeAccount
    catalog: MarketCatalog
    prices: PriceSource

    def taker_fee(self, rules: MarketRules) -> Decimal: ...

    def _spot_rules(self, symbol: str) -> MarketRules: ...

    def _fill_price(self, symbol: str, side: str, reference: Decimal) -> Decimal: ...

    def _check_client_order_id(self, client_order_id: str | None) -> None: ...

    def _insert(self, **fields: Any) -> PaperOrder: ...

    def _order_dict(self, order: PaperOrder) -> dict[str, Any]: ...


MAX_CLIENT_ORDER_ID = 64  # as the paper exchange's other orders
STOP, TAKE_PROFIT = PaperOrder.Type.STOP_MARKET, PaperOrder.Type.TAKE_PROFIT_MARKET
# A bar: (open_time, open, high, low).
Bar = tuple[int, Decimal, Decimal, Decimal]


def is_above(order_type: str, side: str) -> bool:
    """A trigger that waits for the price to RISE to it: a buy stop or a sell take-profit."""
    return (side == PaperOrder.Side.BUY) == (order_type == STOP)


def is_hit(order_type: str, side: str, trigger: Decimal, high: Decimal, low: Decimal) -> bool:
    return high >= trigger if is_above(order_type, side) else low <= trigger


def raw_fill_price(order_type: str, side: str, trigger: Decimal, opened: Decimal) -> Decimal:
    """The trigger price, or the candle's open when the open is already beyond it (before
    slippage): worse for a stop, better for a take-profit, as the engine fills them."""
    return max(trigger, opened) if is_above(order_type, side) else min(trigger, opened)


def place_trigger(
    paper: PaperExchange, symbol: str, order_type: str, side: str, amount: Decimal,
    trigger_price: Decimal, client_order_id: str | None,
) -> dict[str, Any]:  # fmt: skip
    """Rest a trigger order (see the module docstring); the ccxt-shaped order."""
    rules = paper.catalog.rules(symbol)
    if rules.type != "swap":
        rules = paper._spot_rules(symbol)  # refuses a market that is neither
    if order_type not in TRIGGER_ORDER_TYPES:
        raise InvalidOrderError(
            f"a trigger order is stop_market or take_profit_market, not {order_type!r}"
        )
    if side not in PaperOrder.Side.values:
        raise InvalidOrderError(f"order side must be buy or sell, not {side!r}")
    _check_id_length(client_order_id)
    trigger = ledger.decimal_of("trigger price", trigger_price)
    quantity, rounded = paper.catalog.check_order(
        symbol, amount=ledger.decimal_of("order amount", amount), price=trigger,
        reference_price=trigger,
    )  # fmt: skip
    assert rounded is not None
    with transaction.atomic():
        paper._check_client_order_id(client_order_id)
        order = paper._insert(
            client_order_id=client_order_id, symbol=rules.symbol, side=side, order_type=order_type,
            price=rounded, amount=quantity, fee_currency=rules.quote, reserved=Decimal(0),
            status=PaperOrder.Status.OPEN, timestamp=paper.prices.now_ms(),
        )  # fmt: skip
    return paper._order_dict(order)


def match_triggers(
    paper: PaperExchange, symbol: str, candles: Iterable[Any]
) -> list[dict[str, Any]]:
    """Fire the open trigger orders of ``symbol`` that ``candles`` reach (module docstring).

    ``candles``: ``Candle`` objects or OHLCV rows, in any order. Returns the orders that fired
    (filled, or cancelled for want of funds), as dicts."""
    bars = sorted(_bar(candle) for candle in candles)
    if not bars:
        return []
    orders = list(
        PaperOrder.objects.filter(
            account=paper.account,
            symbol=symbol,
            status=PaperOrder.Status.OPEN,
            order_type__in=TRIGGER_ORDER_TYPES,
        ).order_by("timestamp", "id")
    )
    fired = []
    for open_time, opened, high, low in bars:
        due = [o for o in orders if o.timestamp <= open_time and o.status == PaperOrder.Status.OPEN]
        due.sort(key=lambda o: o.order_type != STOP)  # in one candle, the stops first
        for order in due:
            assert order.price is not None
            if not is_hit(order.order_type, order.side, order.price, high, low):
                continue
            result = _fire(paper, order.pk, open_time, opened)
            order.status = PaperOrder.Status.CLOSED  # done with, whatever became of it
            if result is not None:
                fired.append(result)
    return fired


def _fire(paper: PaperExchange, pk: int, open_time: int, opened: Decimal) -> dict[str, Any] | None:
    """Fill the trigger order ``pk`` in the candle opened at ``open_time`` (or cancel it when
    the funds are gone); None when it was no longer open."""
    swap = paper.catalog.rules(PaperOrder.objects.get(pk=pk).symbol)
    if swap.type == "swap":
        return fire_perp(
            paper, pk, open_time, opened,
            lambda order: trigger_fill_price(paper, swap, order, opened),
        )  # fmt: skip
    with transaction.atomic():
        order = PaperOrder.objects.get(pk=pk)
        rules = paper.catalog.rules(order.symbol)
        rows = ledger.lock_balances(paper.account, (rules.base, rules.quote))
        order = PaperOrder.objects.select_for_update().get(pk=pk)
        if order.status != PaperOrder.Status.OPEN:
            return None
        assert order.price is not None
        price = trigger_fill_price(paper, rules, order, opened)
        cost = ledger.round_amount(order.amount * price)
        fee = ledger.round_amount(cost * paper.taker_fee(rules))
        try:
            _settle(paper, rows, rules, order.side, order.amount, cost, fee)
        except InsufficientFundsError:
            order.status = PaperOrder.Status.CANCELED
            order.save()
            return paper._order_dict(order)
        order.status, order.filled, order.average = PaperOrder.Status.CLOSED, order.amount, price
        order.cost, order.fee_cost, order.fee_currency = cost, fee, rules.quote
        order.last_trade_timestamp = open_time
        order.save()
        ledger.save_balances(paper.account, rows)
    return paper._order_dict(order)


def trigger_fill_price(
    paper: PaperExchange, rules: MarketRules, order: PaperOrder, opened: Decimal
) -> Decimal:
    assert order.price is not None
    raw = raw_fill_price(order.order_type, order.side, order.price, opened)
    if order.order_type == STOP:  # a stop is a market exit: slippage; a take-profit is not
        return paper._fill_price(rules.symbol, order.side, raw)
    return paper.catalog.price_to_precision(rules.symbol, raw)


def _settle(
    paper: PaperExchange, rows: dict[str, Any], rules: MarketRules, side: str, amount: Decimal,
    cost: Decimal, fee: Decimal,
) -> None:  # fmt: skip
    """Move the funds of a fill, as a market order's: raises when they are not there."""
    if side == PaperOrder.Side.BUY:
        ledger.require_funds(rows, rules.quote, cost + fee)
        rows[rules.quote].free -= cost + fee
        ledger.balance_row(paper.account, rows, rules.base).free += amount
    else:
        ledger.require_funds(rows, rules.base, amount)
        rows[rules.base].free -= amount
        ledger.balance_row(paper.account, rows, rules.quote).free += cost - fee


def _check_id_length(client_order_id: str | None) -> None:
    if client_order_id is not None and not (0 < len(client_order_id) <= MAX_CLIENT_ORDER_ID):
        raise InvalidOrderError(
            f"client order id must be 1 to {MAX_CLIENT_ORDER_ID} characters long"
        )


def _bar(candle: Any) -> Bar:
    """``(open_time, open, high, low)`` of a ``Candle`` or an OHLCV row."""
    if isinstance(candle, Candle):
        return candle.open_time, Decimal(candle.open), Decimal(candle.high), Decimal(candle.low)
    open_time, opened, high, low = candle[:4]
    return int(open_time), Decimal(str(opened)), Decimal(str(high)), Decimal(str(low))
