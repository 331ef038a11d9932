"""The live exchange: the ``Exchange`` interface on top of ccxt.

- Markets come from the ``MarketCatalog`` (a stored snapshot), so building an adapter makes no
  network call; ``load_markets(reload=True)`` is the one call that fetches them.
- Orders are rounded to the market's precision and checked against its minimums *before* they
  are sent: an order below the minimum never reaches the exchange.
- Every ccxt call goes through ``_ccxt_errors``, which turns ccxt's exceptions into the project's
  ``ExchangeError`` family and logs one line per failure. API credentials live only inside the
  ccxt client; they are scrubbed from every message and log line, and ccxt's own DEBUG logging
  (which prints request headers, API key and passphrase included) is switched off.

Perpetual swaps (``base.PerpExchange``): idempotent one-way/margin-mode/leverage settings, orders
with ``reduce_only``, positions, funding history and mark-price candles; see ``ccxt_swap``.

``params`` (keyword-only, not part of the ``Exchange`` protocol) passes exchange-specific
parameters to ccxt unchanged, e.g. ``{"marginMode": "cross"}`` or ``{"uta": True}``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

import ccxt

from markets.exchanges import ccxt_swap, ccxt_triggers
from markets.exchanges.base import MarketRules, Position
from markets.exchanges.ccxt_messages import exchange_said
from markets.exchanges.errors import (
    ExchangeAuthError,
    ExchangeError,
    InsufficientFundsError,
    InvalidLeverageError,
    InvalidOrderError,
    OrderNotFoundError,
    TransientExchangeError,
    UnknownSymbolError,
)
from markets.exchanges.markets import MarketCatalog, get_catalog, offline_ccxt
from tradingbot import metrics
from tradingbot.logconfig import context

if TYPE_CHECKING:
    from markets.models import ExchangeAccount

logger = logging.getLogger(__name__)

# ccxt logs every request at DEBUG with its headers: ACCESS-KEY and ACCESS-PASSPHRASE in clear.
logging.getLogger("ccxt").setLevel(logging.INFO)

ORDER_TYPES = ("market", "limit")
ORDER_SIDES = ("buy", "sell")
SCRUBBED = "[scrubbed]"
# (exchange, method) pairs failing transiently right now, in this process.
_outages: set[tuple[str, str]] = set()


class CcxtExchange:
    """A real exchange account (or public market data, without credentials) through ccxt."""

    def __init__(
        self,
        exchange_id: str,
        *,
        api_key: str = "",
        secret: str = "",
        password: str = "",
        catalog: MarketCatalog | None = None,
        timeout_seconds: float | None = None,
    ) -> None:
        self.exchange_id = exchange_id
        self.catalog = catalog if catalog is not None else get_catalog(exchange_id)
        self.client: Any = offline_ccxt(
            exchange_id, self.catalog.markets, apiKey=api_key, secret=secret, password=password
        )
        if timeout_seconds is not None:
            self.set_timeout(timeout_seconds)

    @classmethod
    def from_account(
        cls, account: ExchangeAccount, *, timeout_seconds: float | None = None
    ) -> CcxtExchange:
        """The account's exchange, its decrypted credentials held only by the ccxt client."""
        return cls(
            account.exchange,
            api_key=account.api_key.reveal(),
            secret=account.api_secret.reveal(),
            password=account.passphrase.reveal(),
            timeout_seconds=timeout_seconds,
        )

    def set_timeout(self, seconds: float) -> None:
        """How long one HTTP request may take before it fails as ``did not answer in time``
        (a stop, or a check of an account's keys, waits no longer than this per request)."""
        self.client.timeout = max(1, int(seconds * 1000))

    @classmethod
    def public(cls, exchange_id: str) -> CcxtExchange:
        """No credentials: market data only."""
        return cls(exchange_id)

    def __repr__(self) -> str:
        return f"<CcxtExchange {self.exchange_id}>"

    # -- markets -------------------------------------------------------------------------------

    def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        """The catalog's markets; with ``reload``, fetched from the exchange (and kept)."""
        if not reload:
            return self.catalog.markets
        with self._ccxt_errors("load_markets"):
            markets = self.client.load_markets(reload=True)
        markets = dict(markets)
        self.catalog = MarketCatalog(self.exchange_id, markets)
        return markets

    def market_rules(self, symbol: str) -> MarketRules:
        return self.catalog.rules(symbol)

    # -- market data ---------------------------------------------------------------------------

    def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str,
        since: int | None = None,
        limit: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> list[list[float]]:
        self.catalog.market(symbol)
        with self._ccxt_errors("fetch_ohlcv"):
            rows = self.client.fetch_ohlcv(symbol, timeframe, since, limit, dict(params or {}))
        return list(rows)

    def fetch_ticker(
        self, symbol: str, *, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        self.catalog.market(symbol)
        with self._ccxt_errors("fetch_ticker"):
            return dict(self.client.fetch_ticker(symbol, dict(params or {})))

    # -- account -------------------------------------------------------------------------------

    def fetch_balance(self, *, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        with self._ccxt_errors("fetch_balance"):
            return dict(self.client.fetch_balance(dict(params or {})))

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Decimal,
        price: Decimal | None = None,
        *,
        client_order_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Round and check the order against the market's rules, then send it.

        A market order is valued at ``price`` when given, else at the ticker's last price, for
        the minimum-cost check. On spot, a market buy is sent as that value in the quote
        currency (Bitget's market buys are sized in quote), so the amount filled is approximate.
        """
        if type not in ORDER_TYPES:
            raise InvalidOrderError(f"order type must be one of {', '.join(ORDER_TYPES)}")
        if side not in ORDER_SIDES:
            raise InvalidOrderError(f"order side must be one of {', '.join(ORDER_SIDES)}")
        market = self.catalog.market(symbol)
        if amount <= 0:
            raise InvalidOrderError("order amount must be positive")
        if type == "limit" and price is None:
            raise InvalidOrderError("a limit order needs a price")
        reference = price if price is not None else self._last_price(symbol)
        rounded_amount, rounded_price = self.catalog.check_order(
            symbol, amount=amount, price=price, reference_price=reference
        )
        send_price: Decimal | None = rounded_price
        if send_price is None and type == "market" and side == "buy" and market.get("spot"):
            send_price = self.catalog.price_to_precision(symbol, reference)
        extra = dict(params or {})
        if client_order_id is not None:
            extra["clientOid"] = client_order_id
        with self._ccxt_errors("create_order"):
            order = self.client.create_order(
                symbol,
                type,
                side,
                float(rounded_amount),
                float(send_price) if send_price is not None else None,
                extra,
            )
        return dict(order)

    def create_trigger_order(
        self, symbol: str, type: str, side: str, amount: Decimal, trigger_price: Decimal, *,
        reduce_only: bool = True, client_order_id: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A stop-loss / take-profit trigger order (``ccxt_triggers``), rounded and checked
        against the market's rules at the trigger price like a limit order."""
        ccxt_triggers.check_trigger_type(type)
        market = self.catalog.market(symbol)
        rounded_amount, rounded_trigger = self.catalog.check_order(
            symbol, amount=amount, price=trigger_price, reference_price=trigger_price
        )
        assert rounded_trigger is not None
        args = ccxt_triggers.create_args(
            market, type, side, rounded_amount, rounded_trigger, reduce_only=reduce_only,
            client_order_id=client_order_id,
        )  # fmt: skip
        with self._ccxt_errors("create_trigger_order"):
            return dict(self.client.create_order(*args))

    def cancel_order(
        self, id: str, symbol: str, *, trigger: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        self.catalog.market(symbol)
        extra = ccxt_triggers.cancel_params() if trigger else {}
        extra.update(params or {})
        with self._ccxt_errors("cancel_order"):
            return dict(self.client.cancel_order(id, symbol, extra))

    def fetch_order(
        self,
        id: str | None,
        symbol: str,
        *,
        client_order_id: str | None = None,
        trigger: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """By exchange id, or by our ``client_order_id`` (Bitget's ``clientOid``); a trigger
        order among the plan orders (``ccxt_triggers.fetch_trigger``)."""
        if not id and client_order_id is None:
            raise InvalidOrderError("fetch_order needs an order id or a client order id")
        market = self.catalog.market(symbol)
        if trigger:
            return self._fetch_trigger_order(market, id, client_order_id)
        extra = dict(params or {})
        if client_order_id is not None:
            extra["clientOid"] = client_order_id
        with self._ccxt_errors("fetch_order"):
            return dict(self.client.fetch_order(id or "", symbol, extra))

    def _fetch_trigger_order(
        self, market: dict[str, Any], id: str | None, client_order_id: str | None
    ) -> dict[str, Any]:
        with self._ccxt_errors("fetch_order"):
            found = ccxt_triggers.fetch_trigger(self.client, market, id, client_order_id)
        if found is None:
            raise OrderNotFoundError(
                f"no trigger order {client_order_id or id} of {market['symbol']}",
                details={"id": id, "client_order_id": client_order_id},
            )
        return found

    def fetch_open_orders(
        self, symbol: str | None = None, *, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        if symbol is not None:
            self.catalog.market(symbol)
        with self._ccxt_errors("fetch_open_orders"):
            orders = self.client.fetch_open_orders(symbol, None, None, dict(params or {}))
        return [dict(order) for order in orders]

    # -- perpetual swaps (the PerpExchange interface; one-way mode) ---------------------------

    def set_position_mode_one_way(self, symbol: str) -> bool:
        """One-way position mode (for the symbol's product type). False: it already was."""
        if ccxt_swap.is_one_way(self._swap_settings(symbol)):
            return False
        with self._ccxt_errors("set_position_mode"):
            self.client.set_position_mode(False, symbol)
        return True

    def set_margin_mode(self, symbol: str, margin_mode: str) -> bool:
        """``"isolated"`` or ``"cross"`` margin for the symbol. False: it already was."""
        ccxt_swap.check_margin_mode(margin_mode)
        if ccxt_swap.margin_mode_of(self._swap_settings(symbol)) == margin_mode:
            return False
        with self._ccxt_errors("set_margin_mode"):
            self.client.set_margin_mode(margin_mode, symbol)
        return True

    def set_leverage(self, symbol: str, leverage: int) -> bool:
        """The symbol's leverage (both sides). False: it already was."""
        ccxt_swap.check_leverage(self.catalog.market(symbol), leverage)
        if ccxt_swap.leverage_of(self._swap_settings(symbol)) == {Decimal(leverage)}:
            return False
        with self._ccxt_errors("set_leverage"):
            self.client.set_leverage(leverage, symbol)
        return True

    def create_perp_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Decimal,
        price: Decimal | None = None,
        *,
        reduce_only: bool = False,
        client_order_id: str | None = None,
        margin_mode: str = "isolated",
        params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A one-way-mode swap order: buy opens/adds long, sell short; ``reduce_only`` only
        closes. Checked and sent as ``create_order`` (same rules, same ``clientOid``)."""
        ccxt_swap.check_swap(self.catalog.market(symbol))
        ccxt_swap.check_margin_mode(margin_mode)
        extra: dict[str, Any] = {"marginMode": margin_mode, "oneWayMode": True}
        if reduce_only:
            extra["reduceOnly"] = True
        extra.update(params or {})
        return self.create_order(
            symbol, type, side, amount, price, client_order_id=client_order_id, params=extra
        )

    def fetch_positions(
        self, symbols: list[str] | None = None, *, params: Mapping[str, Any] | None = None
    ) -> list[Position]:
        """Open positions (of ``symbols``, else all of the USDT-margined account)."""
        for symbol in symbols or []:
            ccxt_swap.check_swap(self.catalog.market(symbol))
        with self._ccxt_errors("fetch_positions"):
            rows = self.client.fetch_positions(list(symbols or []) or None, dict(params or {}))
        positions = [ccxt_swap.position_from_ccxt(dict(row)) for row in rows]
        return [p for p in positions if p.contracts > 0]

    def fetch_funding_rate_history(
        self,
        symbol: str,
        since: int | None = None,
        limit: int | None = None,
        *,
        params: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """ccxt's funding rates (``fundingRate``, ``timestamp``), oldest first. Bitget pages
        them newest first by ``params={"pageNo": n}`` and ignores ``since`` (ccxt filters)."""
        ccxt_swap.check_swap(self.catalog.market(symbol))
        with self._ccxt_errors("fetch_funding_rate_history"):
            rows = self.client.fetch_funding_rate_history(symbol, since, limit, dict(params or {}))
        return [dict(row) for row in rows]

    def fetch_mark_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[float]]:
        """Candles of the mark price (what liquidation and unrealised PnL follow)."""
        ccxt_swap.check_swap(self.catalog.market(symbol))
        return self.fetch_ohlcv(symbol, timeframe, since, limit, params={"price": "mark"})

    def fetch_leverage_tiers(self, symbol: str) -> list[dict[str, Any]]:
        """The swap's leverage / maintenance-margin tiers, as ccxt gives them (without ``info``);
        ``ccxt_swap.tiers_from_ccxt`` reads them."""
        ccxt_swap.check_swap(self.catalog.market(symbol))
        with self._ccxt_errors("fetch_leverage_tiers"):
            rows = self.client.fetch_market_leverage_tiers(symbol)
        return [{key: value for key, value in row.items() if key != "info"} for row in rows]

    def _swap_settings(self, symbol: str) -> dict[str, Any]:
        """The account's settings for the swap (Bitget's position mode, margin mode, leverage)."""
        ccxt_swap.check_swap(self.catalog.market(symbol))
        with self._ccxt_errors("fetch_swap_settings"):
            leverage = self.client.fetch_leverage(symbol)
        return dict(leverage.get("info") or {})

    # -- internals -----------------------------------------------------------------------------

    def _last_price(self, symbol: str) -> Decimal:
        ticker = self.fetch_ticker(symbol)
        for key in ("last", "close"):
            value = ticker.get(key)
            if value is None:
                continue
            try:
                price = Decimal(str(value))
            except InvalidOperation:
                continue
            if price.is_finite() and price > 0:
                return price
        raise TransientExchangeError(
            f"{self.exchange_id} gave no last price for {symbol}; cannot value the market order"
        )

    def _secrets(self) -> list[str]:
        values = (self.client.apiKey, self.client.secret, self.client.password)
        found: list[str] = []
        for value in values:
            if not value:
                continue
            found.extend({value, quote(value, safe=""), quote_plus(value)})
        # Longest first, so a secret that contains another is scrubbed whole.
        return sorted(found, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, SCRUBBED)
        return text

    def _has_credentials(self) -> bool:
        return bool(self.client.check_required_credentials(False))

    @contextmanager
    def _ccxt_errors(self, method: str) -> Iterator[None]:
        """Turn ccxt's exceptions into ours; log one line, never a credential.

        A transient failure (network, rate limit, maintenance) is logged once per outage of
        this exchange and method, and its end once: a bot retrying with backoff through a
        ten-minute outage writes two lines, not one per try.
        """
        try:
            yield
        except ccxt.BaseError as exc:
            raw = self._scrub(str(exc))
            said, code = exchange_said(raw, self.exchange_id)
            error = self._translate(exc, said, code)
            metrics.EXCHANGE_ERRORS.inc(exchange=self.exchange_id, kind=error.code)
            if isinstance(error, ExchangeAuthError):
                # What the exchange said (scrubbed), for a refusal that names the problem.
                error.details = {"exchange_code": code or "", "exchange_message": said}
            if error.transient and (self.exchange_id, method) in _outages:
                raise error from None
            if error.transient:
                _outages.add((self.exchange_id, method))
            logger.warning(
                "%s %s failed: %s",
                self.exchange_id,
                method,
                type(exc).__name__,
                extra=context(
                    exchange=self.exchange_id,
                    method=method,
                    error=type(exc).__name__,
                    exchange_code=code or "",
                    exchange_message=said,
                    code=error.code,
                ),
            )
            raise error from None
        if (self.exchange_id, method) in _outages:
            _outages.discard((self.exchange_id, method))
            logger.info(
                "%s %s answers again",
                self.exchange_id,
                method,
                extra=context(exchange=self.exchange_id, method=method),
            )

    def _translate(self, exc: ccxt.BaseError, said: str, code: str | None) -> ExchangeError:
        name = self.exchange_id
        if code in ccxt_swap.LEVERAGE_REFUSALS:
            return InvalidLeverageError(f"{name} refused the leverage: {said}")
        if isinstance(exc, ccxt.AuthenticationError):  # PermissionDenied is a subclass
            if not self._has_credentials():
                return ExchangeAuthError(f"this {name} account has no API key configured")
            return ExchangeAuthError("exchange rejected the API key")
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFundsError(f"insufficient balance on {name} for this order ({said})")
        if isinstance(exc, ccxt.OrderNotFound):  # before InvalidOrder, its parent
            return OrderNotFoundError(f"order not found on {name}")
        if isinstance(exc, ccxt.InvalidOrder):
            return InvalidOrderError(f"{name} refused the order: {said}")
        if isinstance(exc, ccxt.BadSymbol):
            return UnknownSymbolError(f"{name} does not know this symbol: {said}")
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            return TransientExchangeError(f"{name} rate limit reached; retry later")
        if isinstance(exc, ccxt.ExchangeNotAvailable):  # OnMaintenance is a subclass
            return TransientExchangeError(f"{name} is unavailable (maintenance or overload)")
        if isinstance(exc, ccxt.RequestTimeout):
            return TransientExchangeError(f"{name} did not answer in time")
        if isinstance(exc, ccxt.NetworkError):
            return TransientExchangeError(f"could not reach {name}")
        return ExchangeError(f"{name} error: {said}")
