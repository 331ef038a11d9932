"""The paper exchange's USDT-margined perpetual swaps (``base.PerpExchange``): one-way mode,
isolated margin, all in the database ledger (``PaperPosition``, ``PaperBalance``, ``PaperOrder``).

``PaperExchange`` delegates its perp methods here; the rules are the backtest engine's
(``markets.perp`` for the arithmetic, docs/backtest-engine.md), so a paper bot and a backtest of the
same settings trade alike. Figures below are for ``BTC/USDT:USDT`` (contract size 1, amount step
0.0001, price step 0.1, minimum cost 5 USDT, taker fee 0.0006, maximum leverage 125).

Settings, per account and symbol (a ``PaperPosition`` row, kept while flat)
----------------------------------------------------------------------------
- Position mode: always one-way; ``set_position_mode_one_way`` answers False (already so).
- Margin mode: isolated only; ``"cross"`` is refused (``margin_mode_not_supported``).
- Leverage: 1 (default) to the market's ``limits.leverage.max`` (else ``perp.MAX_LEVERAGE``);
  ``InvalidLeverageError`` outside. Asking for what is set answers False and writes nothing.
  Changing it while a position is open is refused (``position_open``): Bitget allows it by
  adjusting the margin; the paper exchange keeps it simple.

Orders (market only; ``price`` is ignored, a limit order is refused)
--------------------------------------------------------------------
A buy opens or adds to a long, or reduces a short; a sell the other way round. The fill price is
the price source's reference price with the account's slippage, as for spot: at 20000 and 5 bps a
buy fills at 20010.0. With ``q`` contracts, ``c`` the contract size, ``P`` the fill, ``L`` the
leverage and ``f`` the taker fee (``paper_taker_fee`` or the market's):

- Opening or adding: ``notional = q c P``, ``fee = notional f``, ``margin = notional / L`` (rounded
  up to 12 places). ``margin + fee`` leaves USDT free (refused with ``insufficient_funds`` when
  free is short, writing nothing); the margin is then counted in USDT ``used``. Adding averages the
  entry: ``(Q E + q P) / (Q + q)``. E.g. 0.1 BTC long at 20010.0, L 10: notional 2001, fee 1.2006,
  margin 200.1; free goes down by 201.3006.
- Reducing (``reduce_only`` or not): the order may not exceed the position (a reversal is
  refused: close, then open the other side); the margin is released pro rata, ``pnl = s q c
  (P - E)`` (``s`` +1 long, -1 short) is realised, and ``released + pnl - fee`` goes back to
  free (never below 0: an isolated position loses at most its margin). A reduce is rounded to the
  amount step but not held to the minimums, so any remainder can be closed. ``reduce_only`` that
  would open or add is refused (``reduce_only_rejected``), as Bitget does.
- The liquidation price (``perp.liquidation_price`` with the market's tiers (the catalog's
  ``leverageTiers``, ``ccxt_swap.market_tiers``), else ``perp.DEFAULT_TIERS`` (m = 0.005), no fee
  term) is rounded to the price step towards the entry and stored on the position; a long at
  leverage 1 has none (NULL). Long 20010.0 at L 10 on BTC's first tier (m = 0.004):
  20010 x 0.9 / 0.996 = 18081.325... -> 18081.4.
- Realised PnL excludes fees (as Bitget's ``achievedProfits``); the order row has the fee.

Funding and liquidation: ``settle_perps(symbol, candles)``
-----------------------------------------------------------
The caller passes the candles closed since its last call (as for ``match_limit_orders``; passing
them again is harmless), before it places the tick's orders: an order does not look for a
liquidation itself. Candle by candle, in time order, for the open position:

1. Funding at each stored ``FundingRate`` time ``t`` with ``last_funding_ms < t <= open time``:
   ``perp.funding_payment(side, q c, mark_t, rate)`` is added to USDT free and to the position's
   ``funding``. ``mark_t`` is the open at ``t`` of the stored ``MarkCandle`` of the candles'
   timeframe, else of the shortest timeframe stored at ``t``, else the trade candle's open at
   ``t``, else the last trade close before ``t``. ``last_funding_ms`` starts at the
   opening time and moves to each ``t`` charged, so a time is charged once, across calls and
   restarts, and a position opened exactly at ``t`` does not pay at ``t``. A payment larger than
   the free balance takes the rest from the position's margin.
2. Liquidation, on every candle from the one the position opened in: when the mark candle of the
   same timeframe and open time (else the trade candle) reaches the liquidation price (long: low
   <= it, short: high >= it), the position is closed AT that price with the taker fee (a
   ``PaperOrder`` with ``reason="liquidation"``, ``reduce_only``, no client order id) and the
   margin left (``margin + pnl - fee``, at least 0) returns to free.

So inside one candle funding at its open comes first, then liquidation during it. A bot matches
its trigger orders (``match_trigger_orders``, which close a swap position through
``reduce_position``: ``paper_perp_triggers``) on each candle too, before ``settle_perps`` when
its stop-loss lies nearer the entry than the liquidation price, else after.
``settle_funding_due(symbol)`` charges the funding due up to the market time now (what an order
would first), so that a bot reads the position's funding before it closes it. An order on a
position first settles the funding due up to now (market time): a position closed at ``t`` pays at
``t``; one opened at ``t`` does not. Funding does not move the liquidation price (the backtest's
simplification). ``fetch_positions`` values the position at the price source's reference price
(the paper mark). Candles not closed by the price source's market time are skipped. The market
reads (``fetch_funding_rate_history``, ``fetch_mark_ohlcv``) serve the stored rows up to the
market time, as ``fetch_ohlcv`` does; see ``paper_perp_funding``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from django.db import transaction

from markets import perp
from markets.exchanges import ccxt_swap
from markets.exchanges import paper_ledger as ledger
from markets.exchanges import paper_perp_funding as funding
from markets.exchanges.base import Position
from markets.exchanges.errors import (
    BelowMinimumError,
    ExchangeError,
    InvalidLeverageError,
    InvalidOrderError,
)
from markets.exchanges.paper_perp_funding import Bar, PaperHost, SwapMarket
from markets.exchanges.paper_results import fmt_decimal
from markets.models import Candle, PaperBalance, PaperOrder, PaperPosition
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)
Side = PaperPosition.Side
ZERO = Decimal(0)


@dataclass
class Fill:
    """One market fill on a position: ``qty`` contracts at ``price``."""

    side: str  # buy / sell
    qty: Decimal
    price: Decimal
    time: int
    client_order_id: str | None = None
    reduce_only: bool = False
    reason: str = PaperOrder.Reason.CALLER


class PaperPerps:
    """The perp methods of one ``PaperExchange`` (built per call; it holds no state)."""

    def __init__(self, host: PaperHost) -> None:
        self.host = host
        self.account = host.account

    # --- settings ---------------------------------------------------------------------------

    def set_position_mode_one_way(self, symbol: str) -> bool:
        self.swap_market(symbol)
        return False  # the paper exchange has no other mode

    def set_margin_mode(self, symbol: str, margin_mode: str) -> bool:
        self.swap_market(symbol)
        check_isolated(margin_mode)
        return False  # isolated is the only mode, so it is always set

    def set_leverage(self, symbol: str, leverage: int) -> bool:
        self.swap_market(symbol)
        ccxt_swap.check_leverage(self.host.catalog.market(symbol), leverage)
        with transaction.atomic():
            position = self._lock_position(symbol)
            if position.leverage == int(leverage):
                return False
            if position.side != Side.FLAT:
                raise InvalidLeverageError(
                    f"{symbol}: the paper exchange does not change the leverage of an open "
                    f"position ({position.side} {fmt_decimal(position.qty)} at "
                    f"{position.leverage}x); close it first",
                    code="position_open",
                    details={"symbol": symbol, "leverage": position.leverage},
                )
            position.leverage = int(leverage)
            position.save(update_fields=["leverage", "updated_at"])
        return True

    # --- orders -----------------------------------------------------------------------------

    def create_perp_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Decimal,
        *,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        margin_mode: str = "isolated",
    ) -> dict[str, Any]:
        market = self.swap_market(symbol)
        check_isolated(margin_mode)
        check_perp_order(type, side, client_order_id)
        contracts = ledger.decimal_of("order amount", amount)
        if contracts <= 0:
            raise InvalidOrderError("order amount must be positive")
        reference = self.host.prices.reference_price(symbol)
        fill = Fill(
            side=side, qty=contracts, price=self.host._fill_price(symbol, side, reference),
            time=self.host.prices.now_ms(), client_order_id=client_order_id,
            reduce_only=reduce_only,
        )  # fmt: skip
        with transaction.atomic():
            self.host._check_client_order_id(client_order_id)
            rows = ledger.lock_balances(self.account, (market.settle,))
            position = self._lock_position(symbol)
            funding.settle_funding(self.host, market, position, rows, fill.time, ())
            if position.side != Side.FLAT and opposite(position.side) == position_side(side):
                fill.qty = self._reduce_qty(market, position, fill)
                order = self._reduce(market, position, rows, fill)
            else:
                fill.qty = self._open_qty(market, position, fill, reference)
                order = self._increase(market, position, rows, fill)
            position.save()
            ledger.save_balances(self.account, rows)
        return self.host._order_dict(order)

    def _open_qty(
        self, market: SwapMarket, position: PaperPosition, fill: Fill, reference: Decimal
    ) -> Decimal:
        if fill.reduce_only:
            held = "no position" if position.side == Side.FLAT else f"a {position.side} position"
            raise InvalidOrderError(
                f"a reduce-only {fill.side} of {market.rules.symbol} would open or add to a "
                f"position ({held} is open); Bitget refuses it too",
                code="reduce_only_rejected",
                details={"symbol": market.rules.symbol, "position_side": position.side},
            )
        qty, _ = self.host.catalog.check_order(
            market.rules.symbol, amount=fill.qty, price=None, reference_price=reference
        )
        return qty

    def _reduce_qty(self, market: SwapMarket, position: PaperPosition, fill: Fill) -> Decimal:
        qty = self.host.catalog.amount_to_precision(market.rules.symbol, fill.qty)
        if qty <= 0:
            raise BelowMinimumError(
                f"order amount {fill.qty} rounds to zero at the amount precision of "
                f"{market.rules.amount_step} for {market.rules.symbol}",
                details={"amount_step": str(market.rules.amount_step), "amount": str(fill.qty)},
            )
        if qty > position.qty:
            raise InvalidOrderError(
                f"a {fill.side} of {fmt_decimal(qty)} {market.rules.symbol} is more than the "
                f"{position.side} position of {fmt_decimal(position.qty)}: the paper exchange "
                "does not reverse a position in one order; close it, then open the other side",
                code="reduce_only_rejected" if fill.reduce_only else "position_reversal",
                details={"symbol": market.rules.symbol, "position": fmt_decimal(position.qty)},
            )
        return qty

    def _increase(
        self, market: SwapMarket, position: PaperPosition, rows: dict[str, PaperBalance],
        fill: Fill,
    ) -> PaperOrder:  # fmt: skip
        notional = ledger.round_amount(market.base_qty(fill.qty) * fill.price)
        fee = ledger.round_amount(notional * self.host.taker_fee(market.rules))
        margin = ledger.round_up(notional / position.leverage)
        ledger.require_funds(rows, market.settle, margin + fee)
        rows[market.settle].free -= margin + fee
        if position.side == Side.FLAT:
            position.side = position_side(fill.side)
            position.qty, position.entry_price = fill.qty, fill.price
            position.funding = position.realized_pnl = ZERO
            position.opened_at_ms = position.last_funding_ms = fill.time
        else:
            assert position.entry_price is not None
            total = position.qty + fill.qty
            position.entry_price = ledger.round_amount(
                (position.qty * position.entry_price + fill.qty * fill.price) / total
            )
            position.qty = total
        position.margin += margin
        position.liquidation_price = self._liquidation_price(market, position)
        return self._record(market, fill, notional, fee)

    def _reduce(
        self, market: SwapMarket, position: PaperPosition, rows: dict[str, PaperBalance],
        fill: Fill,
    ) -> PaperOrder:  # fmt: skip
        notional, fee = self.reduce_position(market, position, rows, fill)
        return self._record(market, fill, notional, fee)

    def reduce_position(
        self, market: SwapMarket, position: PaperPosition, rows: dict[str, PaperBalance],
        fill: Fill,
    ) -> tuple[Decimal, Decimal]:  # fmt: skip
        """Take ``fill`` off the position (rows locked): the margin released, the pnl realised,
        the fee charged; the fill's notional and fee (the caller records the order)."""
        assert position.entry_price is not None
        closing_all = fill.qty == position.qty
        released = (
            position.margin
            if closing_all
            else ledger.round_amount(position.margin * fill.qty / position.qty)
        )
        pnl = ledger.round_amount(
            perp.unrealized_pnl(
                position.side, position.entry_price, fill.price, market.base_qty(fill.qty)
            )
        )
        notional = ledger.round_amount(market.base_qty(fill.qty) * fill.price)
        fee = ledger.round_amount(notional * self.host.taker_fee(market.rules))
        row = ledger.balance_row(self.account, rows, market.settle)
        row.free += max(released + pnl - fee, ZERO)
        position.margin -= released
        position.qty -= fill.qty
        position.realized_pnl += pnl
        if closing_all:
            position.side, position.entry_price, position.liquidation_price = Side.FLAT, None, None
        else:
            position.liquidation_price = self._liquidation_price(market, position)
        return notional, fee

    def _record(self, market: SwapMarket, fill: Fill, notional: Decimal, fee: Decimal) -> Any:
        return self.host._insert(
            client_order_id=fill.client_order_id, symbol=market.rules.symbol, side=fill.side,
            order_type=PaperOrder.Type.MARKET, price=None, amount=fill.qty, filled=fill.qty,
            average=fill.price, cost=notional, fee_cost=fee, fee_currency=market.settle,
            reserved=ZERO, status=PaperOrder.Status.CLOSED, reduce_only=fill.reduce_only,
            reason=fill.reason, timestamp=fill.time, last_trade_timestamp=fill.time,
        )  # fmt: skip

    def _liquidation_price(self, market: SwapMarket, position: PaperPosition) -> Decimal | None:
        assert position.entry_price is not None
        try:
            price = perp.liquidation_price(
                position.side, position.entry_price, market.base_qty(position.qty),
                position.leverage, market.tiers,
            )  # fmt: skip
        except perp.PerpRuleError as exc:
            raise InvalidOrderError(f"{market.rules.symbol}: {exc}", code="perp_rule") from None
        if price <= 0:
            return None  # a long at leverage 1: the price would have to reach 0
        step = market.rules.price_step or ledger.PLACES
        return perp.round_liquidation_price(position.side, price, step)

    # --- reads ------------------------------------------------------------------------------

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        for symbol in symbols or []:
            self.swap_market(symbol)
        rows = PaperPosition.objects.filter(account=self.account).exclude(side=Side.FLAT)
        if symbols:
            rows = rows.filter(symbol__in=symbols)
        return [self._position(row) for row in rows.order_by("symbol")]

    def _position(self, row: PaperPosition) -> Position:
        market = self.swap_market(row.symbol)
        assert row.entry_price is not None
        try:
            mark: Decimal | None = self.host.prices.reference_price(row.symbol)
        except ExchangeError:
            mark = None  # no price now (the replay has ended): the rest is still known
        upnl = None
        if mark is not None:
            upnl = perp.unrealized_pnl(row.side, row.entry_price, mark, market.base_qty(row.qty))
            upnl = ledger.round_amount(upnl)
        return Position(
            symbol=row.symbol, side=cast(perp.Side, row.side), contracts=plain(row.qty),
            entry_price=plain(row.entry_price), mark_price=mark,
            leverage=Decimal(row.leverage), margin_mode=row.margin_mode,
            unrealized_pnl=None if upnl is None else plain(upnl),
            liquidation_price=None if row.liquidation_price is None else plain(
                row.liquidation_price),
            margin=plain(row.margin), funding=plain(row.funding),
        )  # fmt: skip

    def fetch_funding_rate_history(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        self.swap_market(symbol)
        return funding.funding_rate_history(self.host, symbol, since, limit)

    def fetch_mark_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]:
        self.swap_market(symbol)
        return funding.mark_ohlcv(self.host, symbol, timeframe, since, limit)

    # --- funding and liquidation ------------------------------------------------------------

    def settle_perps(
        self, symbol: str, candles: Iterable[Any], *, timeframe: str | None = None
    ) -> list[dict[str, Any]]:
        """Apply funding and liquidation over ``candles`` (``Candle`` objects or OHLCV rows of
        ``symbol``, closed, in any order); returns the liquidation orders, as dicts.
        ``timeframe`` (else the ``Candle`` objects') finds the mark candles to check."""
        market = self.swap_market(symbol)
        items = list(candles)
        timeframe = timeframe or next((c.timeframe for c in items if isinstance(c, Candle)), None)
        now = self.host.prices.now_ms()
        step = funding.timeframe_step(timeframe) if timeframe is not None else 1
        bars = sorted(bar for bar in map(funding.to_bar, items) if bar.open_time + step <= now)
        liquidations = []
        for bar in bars:
            if not self._has_position(symbol):
                break
            order = self._settle_candle(market, bar, bars, timeframe)
            if order is not None:
                liquidations.append(self.host._order_dict(order))
                logger.info(
                    "paper.liquidation",
                    extra=context(
                        exchange_account_id=self.account.pk, symbol=symbol,
                        order_id=order.order_id, price=fmt_decimal(order.average or ZERO),
                        candle_open_time=bar.open_time,
                    ),
                )  # fmt: skip
        return liquidations

    def settle_funding_due(self, symbol: str, until_ms: int | None = None) -> None:
        """Charge the funding due up to ``until_ms`` (else the market time now: a funding time
        at the current candle's open included), as an order on the position would first: a bot
        reads the position's funding before it closes it."""
        market = self.swap_market(symbol)
        now = self.host.prices.now_ms()
        until = now if until_ms is None else min(until_ms, now)
        with transaction.atomic():
            rows = ledger.lock_balances(self.account, (market.settle,))
            position = self._lock_position(symbol)
            funding.settle_funding(self.host, market, position, rows, until, ())
            position.save()
            ledger.save_balances(self.account, rows)

    def _has_position(self, symbol: str) -> bool:
        return (
            PaperPosition.objects.filter(account=self.account, symbol=symbol)
            .exclude(side=Side.FLAT)
            .exists()
        )

    def _settle_candle(
        self, market: SwapMarket, bar: Bar, bars: Sequence[Bar], timeframe: str | None
    ) -> PaperOrder | None:
        with transaction.atomic():
            rows = ledger.lock_balances(self.account, (market.settle,))
            position = self._lock_position(market.rules.symbol)
            funding.settle_funding(
                self.host, market, position, rows, bar.open_time, bars, timeframe
            )
            order = None
            if funding.liquidated_in(self.host, market, position, bar, timeframe):
                assert position.liquidation_price is not None
                fill = Fill(
                    side="sell" if position.side == Side.LONG else "buy", qty=position.qty,
                    price=position.liquidation_price, time=bar.open_time, reduce_only=True,
                    reason=PaperOrder.Reason.LIQUIDATION,
                )  # fmt: skip
                order = self._reduce(market, position, rows, fill)
            position.save()
            ledger.save_balances(self.account, rows)
        return order

    # --- helpers ----------------------------------------------------------------------------

    def swap_market(self, symbol: str) -> SwapMarket:
        return funding.swap_market(self.host.catalog, symbol)

    def _lock_position(self, symbol: str) -> PaperPosition:
        """The account's row for ``symbol``, created flat at leverage 1, locked."""
        PaperPosition.objects.get_or_create(account=self.account, symbol=symbol)
        return PaperPosition.objects.select_for_update().get(account=self.account, symbol=symbol)


def check_isolated(margin_mode: str) -> None:
    ccxt_swap.check_margin_mode(margin_mode)
    if margin_mode != "isolated":
        raise InvalidOrderError(
            f"the paper exchange trades isolated margin only, not {margin_mode}",
            code="margin_mode_not_supported",
            details={"margin_mode": [f"{margin_mode} margin is not supported on paper."]},
        )


def check_perp_order(type: str, side: str, client_order_id: str | None) -> None:
    if type != PaperOrder.Type.MARKET:
        raise InvalidOrderError(f"paper perp orders are market orders only, not {type!r}")
    if side not in PaperOrder.Side.values:
        raise InvalidOrderError(f"order side must be buy or sell, not {side!r}")
    longest = PaperOrder._meta.get_field("client_order_id").max_length or 64
    if client_order_id is not None and not (0 < len(client_order_id) <= longest):
        raise InvalidOrderError(f"client order id must be 1 to {longest} characters long")


def position_side(order_side: str) -> str:
    return Side.LONG if order_side == PaperOrder.Side.BUY else Side.SHORT


def opposite(position: str) -> str:
    return Side.SHORT if position == Side.LONG else Side.LONG


def plain(value: Decimal) -> Decimal:
    """A stored Decimal without the database's trailing zeros (0.100000000000 -> 0.1)."""
    return Decimal(fmt_decimal(value))
