"""The paper exchange: simulated spot trading for one paper ``ExchangeAccount``.

It implements the ``Exchange`` interface with ccxt-shaped results, so a bot cannot tell it from
a real exchange. Its whole state is in the database (``PaperBalance``, ``PaperOrder``): a new
``PaperExchange`` in another process sees the same balances and open orders. Every change is
one transaction that locks (``select_for_update``) the balance rows it touches, in currency
order; a refused order writes nothing.

Rules come from the market catalog (precision, minimums, fees), exactly as for a live order:
amount and price are rounded and checked by ``MarketCatalog.check_order`` first. Only spot
markets are traded. Fees are the market's ``maker``/``taker`` fees unless the account sets
``paper_maker_fee``/``paper_taker_fee``; slippage is ``paper_slippage_bps`` (1 bps = 0.0001).

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
from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from django.db import IntegrityError, transaction

from markets.decimals import finite_decimal
from markets.exchanges.base import MarketRules
from markets.exchanges.errors import (
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
)
from markets.exchanges.markets import MarketCatalog, forget_catalogs, get_catalog
from markets.exchanges.paper_results import fmt_decimal, iso_time, order_result
from markets.exchanges.prices import PriceSource
from markets.models import Candle, ExchangeAccount, PaperBalance, PaperOrder
from markets.timeframes import TimeframeError, timeframe_ms

PLACES = Decimal("1e-12")  # the database keeps 12 decimal places (bots.models.PRICE)
MAX_BALANCE = Decimal("1e16")  # and 16 digits before the point
BPS = Decimal("0.0001")
MAX_CLIENT_ORDER_ID = 64


class PaperAccountRequiredError(ExchangeError):
    default_code = "paper_account_required"
    default_status = 400


def _require_paper(account: ExchangeAccount) -> None:
    if account.mode != ExchangeAccount.Mode.PAPER:
        raise PaperAccountRequiredError(
            f"exchange account {account.label!r} is a {account.mode} account; "
            "the paper exchange trades paper accounts only"
        )


def _round(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_HALF_UP)


def _round_up(value: Decimal) -> Decimal:
    return value.quantize(PLACES, rounding=ROUND_CEILING)


def _decimal(name: str, value: Any) -> Decimal:
    """``value`` as a finite Decimal; ``InvalidOrderError`` naming ``name`` otherwise."""
    number = finite_decimal(value)
    if number is None:
        raise InvalidOrderError(f"{name} must be a finite number, not {value!r}")
    return number


def _split_symbol(symbol: str) -> tuple[str, str]:
    """Base and quote of a unified ccxt symbol (``BASE/QUOTE`` or ``BASE/QUOTE:SETTLE``)."""
    base, _, rest = symbol.partition("/")
    return base, rest.partition(":")[0]


def _reserve_currency(order: PaperOrder) -> str:
    base, quote = _split_symbol(order.symbol)
    return quote if order.side == PaperOrder.Side.BUY else base


class PaperExchange:
    """The ``Exchange`` interface over the database, for one paper account."""

    def __init__(
        self,
        account: ExchangeAccount,
        *,
        prices: PriceSource,
        catalog: MarketCatalog | None = None,
    ) -> None:
        _require_paper(account)
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
        rows = PaperBalance.objects.filter(account=self.account).order_by("currency")
        timestamp = self.prices.now_ms()
        result: dict[str, Any] = {
            "info": {
                "balances": [
                    {
                        "currency": b.currency,
                        "free": fmt_decimal(b.free),
                        "used": fmt_decimal(b.used),
                    }
                    for b in rows
                ]
            },
            "timestamp": timestamp,
            "datetime": iso_time(timestamp),
            "free": {},
            "used": {},
            "total": {},
        }
        for row in rows:
            amounts = {
                "free": float(row.free),
                "used": float(row.used),
                "total": float(row.free + row.used),
            }
            result[row.currency] = amounts
            for key, value in amounts.items():
                result[key][row.currency] = value
        return result

    def _lock_balances(self, currencies: Iterable[str]) -> dict[str, PaperBalance]:
        """Lock the account's existing balance rows of ``currencies``, in currency order."""
        query = (
            PaperBalance.objects.select_for_update()
            .filter(account=self.account, currency__in=sorted(set(currencies)))
            .order_by("currency")
        )
        return {row.currency: row for row in query}

    def _row(self, rows: dict[str, PaperBalance], currency: str) -> PaperBalance:
        """The locked row of ``currency``, created (at zero) when the account has none yet."""
        row = rows.get(currency)
        if row is None:
            PaperBalance.objects.get_or_create(account=self.account, currency=currency)
            row = PaperBalance.objects.select_for_update().get(
                account=self.account, currency=currency
            )
            rows[currency] = row
        return row

    @staticmethod
    def _require(rows: dict[str, PaperBalance], currency: str, needed: Decimal) -> None:
        row = rows.get(currency)
        available = row.free if row is not None else Decimal(0)
        if available < needed:
            raise InsufficientFundsError(
                f"insufficient {currency}: the order needs {fmt_decimal(needed)} {currency}, "
                f"{fmt_decimal(available)} {currency} is available",
                details={"currency": currency, "needed": fmt_decimal(needed),
                         "available": fmt_decimal(available)},
            )  # fmt: skip

    def _save(self, rows: dict[str, PaperBalance]) -> None:
        """Recompute ``used`` from the open orders' reserves and save the locked rows."""
        reserved: dict[str, Decimal] = {}
        for order in PaperOrder.objects.filter(account=self.account, status=PaperOrder.Status.OPEN):
            currency = _reserve_currency(order)
            reserved[currency] = reserved.get(currency, Decimal(0)) + order.reserved
        for currency, row in rows.items():
            row.used = _round(reserved.get(currency, Decimal(0)))
            row.free = _round(row.free)
            row.save(update_fields=["free", "used"])

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
        if type not in PaperOrder.Type.values:
            raise InvalidOrderError(f"order type must be market or limit, not {type!r}")
        if side not in PaperOrder.Side.values:
            raise InvalidOrderError(f"order side must be buy or sell, not {side!r}")
        if client_order_id is not None and not (0 < len(client_order_id) <= MAX_CLIENT_ORDER_ID):
            raise InvalidOrderError(
                f"client order id must be 1 to {MAX_CLIENT_ORDER_ID} characters long"
            )
        quantity = _decimal("order amount", amount)
        if type == PaperOrder.Type.LIMIT:
            if price is None:
                raise InvalidOrderError("a limit order needs a price")
            limit_price = _decimal("order price", price)
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
        cost = _round(amount * fill_price)
        fee = _round(cost * self.taker_fee(rules))
        now = self.prices.now_ms()
        with transaction.atomic():
            self._check_client_order_id(client_order_id)
            rows = self._lock_balances((rules.base, rules.quote))
            if side == PaperOrder.Side.BUY:
                self._require(rows, rules.quote, cost + fee)
                rows[rules.quote].free -= cost + fee
                self._row(rows, rules.base).free += amount
            else:
                self._require(rows, rules.base, amount)
                rows[rules.base].free -= amount
                self._row(rows, rules.quote).free += cost - fee
            order = self._insert(
                client_order_id=client_order_id, symbol=rules.symbol, side=side,
                order_type=PaperOrder.Type.MARKET, price=None, amount=amount, filled=amount,
                average=fill_price, cost=cost, fee_cost=fee, fee_currency=rules.quote,
                reserved=Decimal(0), status=PaperOrder.Status.CLOSED, timestamp=now,
                last_trade_timestamp=now,
            )  # fmt: skip
            self._save(rows)
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
            reserve = _round_up(amount * price * (1 + max(self.maker_fee(rules), Decimal(0))))
        else:
            currency, reserve = rules.base, amount
        now = self.prices.now_ms()
        with transaction.atomic():
            self._check_client_order_id(client_order_id)
            rows = self._lock_balances((currency,))
            self._require(rows, currency, reserve)
            rows[currency].free -= reserve
            order = self._insert(
                client_order_id=client_order_id, symbol=rules.symbol, side=side,
                order_type=PaperOrder.Type.LIMIT, price=price, amount=amount,
                fee_currency=rules.quote, reserved=reserve, status=PaperOrder.Status.OPEN,
                timestamp=now,
            )  # fmt: skip
            self._save(rows)
        return self._order_dict(order)

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
            base, quote = _split_symbol(order.symbol)
            rows = self._lock_balances((base, quote))
            order = PaperOrder.objects.select_for_update().get(pk=pk)
            if order.status != PaperOrder.Status.OPEN:
                return None  # cancelled or filled meanwhile
            assert order.price is not None
            rules = self.catalog.rules(order.symbol)
            cost = _round(order.amount * order.price)
            fee = _round(cost * self.maker_fee(rules))
            if order.side == PaperOrder.Side.BUY:
                fee = min(fee, order.reserved - cost)
                self._row(rows, quote).free += order.reserved - cost - fee
                self._row(rows, base).free += order.amount
            else:
                self._row(rows, base)  # its reserve leaves "used" when _save recomputes it
                self._row(rows, quote).free += cost - fee
            order.status = PaperOrder.Status.CLOSED
            order.filled = order.amount
            order.average = order.price
            order.cost = cost
            order.fee_cost = fee
            order.fee_currency = quote
            order.reserved = Decimal(0)
            order.last_trade_timestamp = trade_time
            order.save()
            self._save(rows)
        return self._order_dict(order)

    def cancel_order(self, id: str, symbol: str) -> dict[str, Any]:
        with transaction.atomic():
            order = self._get_order(id, symbol, None)
            currency = _reserve_currency(order)
            rows = self._lock_balances((currency,))
            order = PaperOrder.objects.select_for_update().get(pk=order.pk)
            if order.status != PaperOrder.Status.OPEN:
                raise InvalidOrderError(
                    f"order {order.order_id} is {order.status} and cannot be cancelled",
                    code="order_not_open",
                    details={"status": order.status},
                )
            self._row(rows, currency).free += order.reserved
            order.reserved = Decimal(0)
            order.status = PaperOrder.Status.CANCELED
            order.save()
            self._save(rows)
        return self._order_dict(order)

    def fetch_order(
        self, id: str | None, symbol: str, *, client_order_id: str | None = None
    ) -> dict[str, Any]:
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


def fund(
    account: ExchangeAccount,
    balances: Mapping[str, Decimal | int | str],
    *,
    catalog: MarketCatalog | None = None,
) -> dict[str, PaperBalance]:
    """Set the free balances of a paper account (e.g. its starting money), in one transaction.

    Each currency must be one of the exchange's markets; amounts are >= 0 with at most 12
    decimal places. Funds reserved by open orders (``used``) are left as they are.
    """
    _require_paper(account)
    catalog = catalog if catalog is not None else get_catalog(account.exchange)
    amounts: dict[str, Decimal] = {}
    for currency, value in balances.items():
        if currency not in catalog.currencies:
            raise ExchangeError(
                f"unknown currency {currency!r} on {account.exchange}",
                code="unknown_currency", status=400,
                details={"currency": [f"Not a currency of {account.exchange}'s markets."]},
            )  # fmt: skip
        try:
            amount = _decimal(f"balance of {currency}", value)
        except InvalidOrderError as error:
            raise ExchangeError(error.message, code="invalid_amount", status=400) from None
        if amount < 0 or amount >= MAX_BALANCE or amount != amount.quantize(PLACES):
            raise ExchangeError(
                f"balance of {currency} must be >= 0, below {MAX_BALANCE:f} and have at most "
                f"12 decimal places, not {value}",
                code="invalid_amount", status=400, details={"currency": currency},
            )  # fmt: skip
        amounts[currency] = amount
    funded: dict[str, PaperBalance] = {}
    with transaction.atomic():
        for currency in sorted(amounts):
            PaperBalance.objects.get_or_create(account=account, currency=currency)
        rows = PaperBalance.objects.select_for_update().filter(
            account=account, currency__in=sorted(amounts)
        )
        for row in rows.order_by("currency"):
            row.free = amounts[row.currency]
            row.save(update_fields=["free"])
            funded[row.currency] = row
    return funded
