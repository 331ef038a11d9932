"""The paper exchange: simulated spot trading for one paper ``ExchangeAccount``.

It implements the ``Exchange`` interface with ccxt-shaped results, so a bot cannot tell it from
a real exchange. Its whole state is in the database (``PaperBalance``, ``PaperOrder``,
``PaperPosition``): a new ``PaperExchange`` in another process sees the same balances, open
orders and positions. Every change is one transaction that locks (``select_for_update``) the
balance rows it touches, in currency order (then the position row); a refused order writes
nothing.

Rules come from the market catalog (precision, minimums, fees), exactly as for a live order:
amount and price are rounded and checked by ``MarketCatalog.check_order`` first. Only spot
markets are traded by ``create_order``; USDT-margined perpetual swaps by the ``PerpExchange``
methods, whose rules are in ``markets.exchanges.paper_perp``. Fees are the market's
``maker``/``taker`` fees unless the account sets ``paper_maker_fee``/``paper_taker_fee``;
slippage is ``paper_slippage_bps`` (1 bps = 0.0001).

Fill model
----------
- The *reference price* comes from the ``PriceSource`` (``markets.exchanges.prices``): the next
  candle's open in a replay, the ticker's last price in live paper trading.
- A market order fills immediately and fully at
  ``reference_price * (1 + slippage)`` for a buy, ``reference_price * (1 - slippage)`` for a
  sell, rounded to the market's price precision (``catalog.price_to_precision``).
  ``cost = amount * fill price``; ``fee = cost * taker fee``, charged in the QUOTE currency.
  Buy: ``quote.free -= cost + fee``, ``base.free += amount``.
  Sell: ``base.free -= amount``, ``quote.free += cost - fee``.
- A limit order is checked against the same rules (at its own price), then reserves funds —
  buy: ``amount * price * (1 + maker fee)`` of quote, sell: ``amount`` of base — moved from
  free to used and kept in ``PaperOrder.reserved``, and rests with status ``open``. It is never
  filled on placement, even when it would cross the current price. It fills fully at ITS price,
  with the maker fee, on the first candle passed to ``match_limit_orders`` that opens at or after
  the order's timestamp (``open_time >= timestamp``) and trades through the price:
  ``low <= price`` for a buy, ``high >= price`` for a sell. Then
  ``cost = amount * price``, ``fee = cost * maker fee`` (quote), and the reserve is released
  exactly: buy: ``quote.used -= reserve``, ``quote.free += reserve - cost - fee``,
  ``base.free += amount``; sell: ``base.used -= amount``, ``quote.free += cost - fee``.
- A trigger order (``stop_market`` / ``take_profit_market``: a bot's stop-loss and take-profit)
  reserves nothing and fires inside the first candle passed to ``match_trigger_orders`` that
  reaches its trigger price, by the backtest engine's rule: see ``paper_triggers``.
- Cancelling an open order gives its whole reserve back to free. No dust stays in ``used``:
  ``used`` is always the sum of the reserves of the account's open orders.
- Amounts are kept to 12 decimal places (the database's): cost and fee are rounded half-up, a
  buy's reserve is rounded up so that it always covers ``cost + fee``. If the maker fee was
  raised after placement, the fee charged on the fill never exceeds what was reserved for it.
- Times are market times from the price source (``now_ms``): the order's ``timestamp``, and a
  market order's ``lastTradeTimestamp``; a limit fill's ``lastTradeTimestamp`` is the open time
  of the candle that filled it.

Results
-------
Numbers in orders, balances and tickers are floats, as ccxt gives them; the exact ``Decimal``
values are in each result's ``info`` as strings. ``fetch_ticker``'s ``bid``/``ask`` are the
prices a market sell/buy would fill at now (slippage included). ``fetch_ohlcv`` reads the stored
candles of the account's exchange, closed by the price source's market time (a replay never
shows a candle that has not closed yet).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction

from markets.exchanges import paper_ledger as ledger
from markets.exchanges import paper_triggers
from markets.exchanges.base import MarketRules
from markets.exchanges.errors import (
    ExchangeError,
    InvalidOrderError,
    OrderNotFoundError,
)
from markets.exchanges.markets import MarketCatalog, forget_catalogs, get_catalog
from markets.exchanges.paper_perp_methods import PaperPerpMethods
from markets.exchanges.paper_results import fmt_decimal, iso_time, order_result
from markets.exchanges.prices import PriceSource
from markets.models import Candle, ExchangeAccount, PaperOrder
from markets.timeframes import TimeframeError, timeframe_ms

BPS = Decimal("0.0001")  # a basis point
MAX_CLIENT_ORDER_ID = 64


class PaperExchange(PaperPerpMethods):
    """The ``Exchange`` interface over the database, for one paper account."""

    def __init__(
        self,
        account: ExchangeAccount,
        *,
        prices: PriceSource,
        catalog: MarketCatalog | None = None,
    ) -> None:
        ledger.require_paper(account)
        self.account = account
        self.exchange_id: str = account.exchange
        self.prices = prices
        self._own_catalog = catalog is None
        self.catalog = catalog if catalog is not None else get_catalog(account.exchange)

    # --- markets and fees ------------------------------------------------------------------

    def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        if reload and self._own_catalog:
            forget_catalogs()
            self.catalog = get_catalog(self.exchange_id)
        return self.catalog.markets

    def market_rules(self, symbol: str) -> MarketRules:
        return self.catalog.rules(symbol)

    def maker_fee(self, rules: MarketRules) -> Decimal:
        override = self.account.paper_maker_fee
        return Decimal(override) if override is not None else rules.maker_fee

    def taker_fee(self, rules: MarketRules) -> Decimal:
        override = self.account.paper_taker_fee
        return Decimal(override) if override is not None else rules.taker_fee

    @property
    def slippage(self) -> Decimal:
        return Decimal(self.account.paper_slippage_bps) * BPS

    def _fill_price(self, symbol: str, side: str, reference: Decimal) -> Decimal:
        factor = 1 + self.slippage if side == PaperOrder.Side.BUY else 1 - self.slippage
        return self.catalog.price_to_precision(symbol, reference * factor)

    def _spot_rules(self, symbol: str) -> MarketRules:
        rules = self.catalog.rules(symbol)  # UnknownSymbolError for an unknown symbol
        if rules.type != "spot":
            raise InvalidOrderError(
                "paper trading supports spot markets only",
                details={"symbol": [f"{symbol} is a {rules.type} market."]},
            )
        return rules

    # --- market data -----------------------------------------------------------------------

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        self.catalog.market(symbol)
        last = self.prices.reference_price(symbol)
        timestamp = self.prices.now_ms()
        bid = self._fill_price(symbol, PaperOrder.Side.SELL, last)
        ask = self._fill_price(symbol, PaperOrder.Side.BUY, last)
        return {
            "symbol": symbol,
            "timestamp": timestamp,
            "datetime": iso_time(timestamp),
            "last": float(last),
            "close": float(last),
            "bid": float(bid),
            "ask": float(ask),
            "info": {"last": fmt_decimal(last), "bid": fmt_decimal(bid), "ask": fmt_decimal(ask)},
        }

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[float]]:
        """Stored candles closed at the price source's market time, oldest first.

        With ``since``: the first ``limit`` from ``since`` on; without: the newest ``limit``.
        """
        self.catalog.market(symbol)
        try:
            step = timeframe_ms(timeframe)
        except TimeframeError as error:
            raise ExchangeError(str(error), code="unknown_timeframe", status=400) from None
        if limit is not None and limit <= 0:
            raise ExchangeError("limit must be positive", code="invalid_limit", status=400)
        rows = Candle.objects.filter(
            exchange=self.exchange_id,
            symbol=symbol,
            timeframe=timeframe,
            open_time__lte=self.prices.now_ms() - step,
        )
        if since is not None:
            rows = rows.filter(open_time__gte=since).order_by("open_time")
            candles = list(rows[:limit] if limit is not None else rows)
        else:
            rows = rows.order_by("-open_time")
            candles = list(reversed(rows[:limit] if limit is not None else rows))
        return [
            [c.open_time, float(c.open), float(c.high), float(c.low), float(c.close),
             float(c.volume)]
            for c in candles
        ]  # fmt: skip

    # --- balances --------------------------------------------------------------------------

    def fetch_balance(self) -> dict[str, Any]:
        return ledger.balances_result(self.account, self.prices.now_ms())

    # --- orders ----------------------------------------------------------------------------

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Decimal,
        price: Decimal | None = None,
        *,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        rules = self._spot_rules(symbol)
        if type not in (PaperOrder.Type.MARKET, PaperOrder.Type.LIMIT):
            # (trigger orders have their own call: ``create_trigger_order``)
            raise InvalidOrderError(f"order type must be market or limit, not {type!r}")
        if side not in PaperOrder.Side.values:
            raise InvalidOrderError(f"order side must be buy or sell, not {side!r}")
        if client_order_id is not None and not (0 < len(client_order_id) <= MAX_CLIENT_ORDER_ID):
            raise InvalidOrderError(
                f"client order id must be 1 to {MAX_CLIENT_ORDER_ID} characters long"
            )
        quantity = ledger.decimal_of("order amount", amount)
        if type == PaperOrder.Type.LIMIT:
            if price is None:
                raise InvalidOrderError("a limit order needs a price")
            limit_price = ledger.decimal_of("order price", price)
            quantity, rounded = self.catalog.check_order(
                symbol, amount=quantity, price=limit_price, reference_price=limit_price
            )
            assert rounded is not None
            return self._place_limit(rules, side, quantity, rounded, client_order_id)
        reference = self.prices.reference_price(symbol)
        quantity, _ = self.catalog.check_order(
            symbol, amount=quantity, price=None, reference_price=reference
        )
        return self._fill_market(rules, side, quantity, reference, client_order_id)

    def _check_client_order_id(self, client_order_id: str | None) -> None:
        if (
            client_order_id is not None
            and PaperOrder.objects.filter(
                account=self.account, client_order_id=client_order_id
            ).exists()
        ):
            raise self._duplicate(client_order_id)

    @staticmethod
    def _duplicate(client_order_id: str) -> InvalidOrderError:
        return InvalidOrderError(
            f"client order id {client_order_id!r} is already used by another order",
            code="duplicate_client_order_id",
            details={"client_order_id": client_order_id},
        )

    def _insert(self, **fields: Any) -> PaperOrder:
        try:
            with transaction.atomic():
                return PaperOrder.objects.create(
                    account=self.account, order_id=str(uuid.uuid4()), **fields
                )
        except IntegrityError:
            client_order_id = fields.get("client_order_id")
            if client_order_id is not None:  # a concurrent order took the id first
                raise self._duplicate(client_order_id) from None
            raise

    def _fill_market(
        self,
        rules: MarketRules,
        side: str,
        amount: Decimal,
        reference: Decimal,
        client_order_id: str | None,
    ) -> dict[str, Any]:
        fill_price = self._fill_price(rules.symbol, side, reference)
        cost = ledger.round_amount(amount * fill_price)
        fee = ledger.round_amount(cost * self.taker_fee(rules))
        now = self.prices.now_ms()
        with transaction.atomic():
            self._check_client_order_id(client_order_id)
            rows = ledger.lock_balances(self.account, (rules.base, rules.quote))
            if side == PaperOrder.Side.BUY:
                ledger.require_funds(rows, rules.quote, cost + fee)
                rows[rules.quote].free -= cost + fee
                ledger.balance_row(self.account, rows, rules.base).free += amount
            else:
                ledger.require_funds(rows, rules.base, amount)
                rows[rules.base].free -= amount
                ledger.balance_row(self.account, rows, rules.quote).free += cost - fee
            order = self._insert(
                client_order_id=client_order_id, symbol=rules.symbol, side=side,
                order_type=PaperOrder.Type.MARKET, price=None, amount=amount, filled=amount,
                average=fill_price, cost=cost, fee_cost=fee, fee_currency=rules.quote,
                reserved=Decimal(0), status=PaperOrder.Status.CLOSED, timestamp=now,
                last_trade_timestamp=now,
            )  # fmt: skip
            ledger.save_balances(self.account, rows)
        return self._order_dict(order)

    def _place_limit(
        self,
        rules: MarketRules,
        side: str,
        amount: Decimal,
        price: Decimal,
        client_order_id: str | None,
    ) -> dict[str, Any]:
        if side == PaperOrder.Side.BUY:
            currency = rules.quote
            reserve = ledger.round_up(amount * price * (1 + max(self.maker_fee(rules), Decimal(0))))
        else:
            currency, reserve = rules.base, amount
        now = self.prices.now_ms()
        with transaction.atomic():
            self._check_client_order_id(client_order_id)
            rows = ledger.lock_balances(self.account, (currency,))
            ledger.require_funds(rows, currency, reserve)
            rows[currency].free -= reserve
            order = self._insert(
                client_order_id=client_order_id, symbol=rules.symbol, side=side,
                order_type=PaperOrder.Type.LIMIT, price=price, amount=amount,
                fee_currency=rules.quote, reserved=reserve, status=PaperOrder.Status.OPEN,
                timestamp=now,
            )  # fmt: skip
            ledger.save_balances(self.account, rows)
        return self._order_dict(order)

    # --- trigger orders (stop-loss / take-profit; issue 16): see ``paper_triggers`` ----------

    def create_trigger_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Decimal,
        trigger_price: Decimal,
        *,
        reduce_only: bool = True,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        """Rest a ``stop_market`` / ``take_profit_market`` order until a candle reaches
        ``trigger_price``. ``reduce_only``: a spot sell can only sell what the account holds."""
        return paper_triggers.place_trigger(
            self, symbol, type, side, amount, trigger_price, client_order_id
        )

    def match_trigger_orders(self, symbol: str, candles: Iterable[Any]) -> list[dict[str, Any]]:
        """Fire the open trigger orders of ``symbol`` that ``candles`` reach, inside the candle,
        by the backtest engine's rule (``paper_triggers``)."""
        return paper_triggers.match_triggers(self, symbol, candles)

    def match_limit_orders(self, symbol: str, candles: Iterable[Any]) -> list[dict[str, Any]]:
        """Fill the open limit orders of ``symbol`` that ``candles`` trade through.

        ``candles``: ``Candle`` objects or ``(open_time_ms, open, high, low, close, volume)`` rows,
        in any order. Each order fills on the first candle opening at or after its timestamp
        whose low (buy) / high (sell) reaches its price. Returns the orders filled, as dicts.
        """
        bars = sorted(_bar(candle) for candle in candles)
        if not bars:
            return []
        filled = []
        orders = PaperOrder.objects.filter(
            account=self.account, symbol=symbol, status=PaperOrder.Status.OPEN,
            order_type=PaperOrder.Type.LIMIT,
        ).order_by("timestamp", "id")  # fmt: skip
        for order in orders:
            assert order.price is not None
            for open_time, high, low in bars:
                if open_time < order.timestamp:
                    continue
                if (order.side == PaperOrder.Side.BUY and low <= order.price) or (
                    order.side == PaperOrder.Side.SELL and high >= order.price
                ):
                    result = self._fill_limit(order.pk, open_time)
                    if result is not None:
                        filled.append(result)
                    break
        return filled

    def _fill_limit(self, pk: int, trade_time: int) -> dict[str, Any] | None:
        with transaction.atomic():
            order = PaperOrder.objects.get(pk=pk)
            base, quote = ledger.split_symbol(order.symbol)
            rows = ledger.lock_balances(self.account, (base, quote))
            order = PaperOrder.objects.select_for_update().get(pk=pk)
            if order.status != PaperOrder.Status.OPEN:
                return None  # cancelled or filled meanwhile
            assert order.price is not None
            rules = self.catalog.rules(order.symbol)
            cost = ledger.round_amount(order.amount * order.price)
            fee = ledger.round_amount(cost * self.maker_fee(rules))
            if order.side == PaperOrder.Side.BUY:
                fee = min(fee, order.reserved - cost)
                ledger.balance_row(self.account, rows, quote).free += order.reserved - cost - fee
                ledger.balance_row(self.account, rows, base).free += order.amount
            else:
                ledger.balance_row(
                    self.account, rows, base
                )  # its reserve leaves "used" when _save recomputes it
                ledger.balance_row(self.account, rows, quote).free += cost - fee
            order.status = PaperOrder.Status.CLOSED
            order.filled = order.amount
            order.average = order.price
            order.cost = cost
            order.fee_cost = fee
            order.fee_currency = quote
            order.reserved = Decimal(0)
            order.last_trade_timestamp = trade_time
            order.save()
            ledger.save_balances(self.account, rows)
        return self._order_dict(order)

    def cancel_order(self, id: str, symbol: str, *, trigger: bool = False) -> dict[str, Any]:
        """Cancel an open order; ``trigger`` (a trigger order) is accepted for the interface's
        sake: the paper exchange finds both kinds by id."""
        with transaction.atomic():
            order = self._get_order(id, symbol, None)
            currency = ledger.reserve_currency(order)
            rows = ledger.lock_balances(self.account, (currency,))
            order = PaperOrder.objects.select_for_update().get(pk=order.pk)
            if order.status != PaperOrder.Status.OPEN:
                raise InvalidOrderError(
                    f"order {order.order_id} is {order.status} and cannot be cancelled",
                    code="order_not_open",
                    details={"status": order.status},
                )
            ledger.balance_row(self.account, rows, currency).free += order.reserved
            order.reserved = Decimal(0)
            order.status = PaperOrder.Status.CANCELED
            order.save()
            ledger.save_balances(self.account, rows)
        return self._order_dict(order)

    def fetch_order(
        self, id: str | None, symbol: str, *, client_order_id: str | None = None,
        trigger: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        return self._order_dict(self._get_order(id, symbol, client_order_id))

    def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        orders = PaperOrder.objects.filter(account=self.account, status=PaperOrder.Status.OPEN)
        if symbol is not None:
            orders = orders.filter(symbol=symbol)
        return [self._order_dict(order) for order in orders.order_by("timestamp", "id")]

    def _get_order(self, id: str | None, symbol: str, client_order_id: str | None) -> PaperOrder:
        if id is None and client_order_id is None:
            raise InvalidOrderError("give an order id or a client order id")
        orders = PaperOrder.objects.filter(account=self.account, symbol=symbol)
        if id is not None:
            orders = orders.filter(order_id=id)
        if client_order_id is not None:
            orders = orders.filter(client_order_id=client_order_id)
        order = orders.first()
        if order is None:
            which = f"id {id}" if id is not None else f"client order id {client_order_id}"
            raise OrderNotFoundError(
                f"no {symbol} order with {which} on this paper account",
                details={"id": id, "client_order_id": client_order_id, "symbol": symbol},
            )
        return order

    def _order_dict(self, order: PaperOrder) -> dict[str, Any]:
        fee_rate: Decimal
        if order.cost:
            fee_rate = (order.fee_cost / order.cost).quantize(Decimal("1e-10")).normalize()
        else:
            rules = self.catalog.rules(order.symbol)
            limit = order.order_type == PaperOrder.Type.LIMIT
            fee_rate = self.maker_fee(rules) if limit else self.taker_fee(rules)
        return order_result(order, fee_rate)


def _bar(candle: Any) -> tuple[int, Decimal, Decimal]:
    """``(open_time, high, low)`` of a ``Candle`` or an OHLCV row."""
    if isinstance(candle, Candle):
        return candle.open_time, Decimal(candle.high), Decimal(candle.low)
    open_time, _open, high, low = candle[:4]
    return int(open_time), Decimal(str(high)), Decimal(str(low))
