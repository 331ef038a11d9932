"""Market metadata and the rules derived from it: precision, minimums, fees.

Markets come from the newest ``MarketSnapshot`` row for the exchange (written by
``manage.py refresh_markets``), or from the snapshot shipped in ``markets/data`` when none was
fetched. Rounding uses ccxt's own ``amount_to_precision`` / ``price_to_precision`` on an offline
ccxt instance with the markets injected, so paper and live round identically.

No minimum is hard-coded anywhere: every limit comes from here.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import ccxt

from markets.exchanges.base import MarketRules
from markets.exchanges.errors import BelowMinimumError, InvalidOrderError, UnknownSymbolError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SUPPORTED_EXCHANGES = ("bitget",)
# A refreshed snapshot reaches long-running processes within this many seconds.
CATALOG_TTL_SECONDS = 300


def shipped_snapshot_path(exchange_id: str) -> Path:
    return DATA_DIR / f"markets.{exchange_id}.json"


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def offline_ccxt(exchange_id: str, markets: dict[str, Any] | None = None, **config: Any) -> Any:
    """A ccxt exchange object that makes no network call for its markets."""
    if exchange_id not in SUPPORTED_EXCHANGES:
        raise UnknownSymbolError(f"exchange {exchange_id!r} is not supported")
    klass = getattr(ccxt, exchange_id)
    options = {"enableRateLimit": True, **config}
    if markets is not None:
        options["markets"] = markets
    return klass(options)


class MarketCatalog:
    """The markets of one exchange, with rules and rounding. Immutable once built."""

    def __init__(self, exchange_id: str, markets: dict[str, dict[str, Any]]) -> None:
        self.exchange_id = exchange_id
        self.markets = markets
        self._ccxt = offline_ccxt(exchange_id, markets)

    @property
    def symbols(self) -> list[str]:
        return sorted(self.markets)

    @property
    def currencies(self) -> set[str]:
        return {m[key] for m in self.markets.values() for key in ("base", "quote") if m.get(key)}

    def market(self, symbol: str) -> dict[str, Any]:
        try:
            return self.markets[symbol]
        except KeyError:
            raise UnknownSymbolError(
                f"unknown symbol {symbol!r} on {self.exchange_id}",
                details={"symbol": [f"Unknown symbol on {self.exchange_id}."]},
            ) from None

    def rules(self, symbol: str) -> MarketRules:
        market = self.market(symbol)
        limits = market.get("limits") or {}
        precision = market.get("precision") or {}
        return MarketRules(
            symbol=symbol,
            base=market["base"],
            quote=market["quote"],
            type=market.get("type") or "spot",
            amount_step=_decimal(precision.get("amount")),
            price_step=_decimal(precision.get("price")),
            min_amount=_decimal((limits.get("amount") or {}).get("min")) or None,
            min_cost=_decimal((limits.get("cost") or {}).get("min")) or None,
            maker_fee=_decimal(market.get("maker")) or Decimal(0),
            taker_fee=_decimal(market.get("taker")) or Decimal(0),
            active=market.get("active") is not False,
        )

    def amount_to_precision(self, symbol: str, amount: Decimal) -> Decimal:
        """Truncate to the market's amount step (never round an order up past the balance)."""
        self.market(symbol)
        try:
            return Decimal(self._ccxt.amount_to_precision(symbol, str(amount)))
        except ccxt.InvalidOrder:
            return Decimal(0)

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        self.market(symbol)
        return Decimal(self._ccxt.price_to_precision(symbol, str(price)))

    def check_order(
        self, symbol: str, *, amount: Decimal, price: Decimal | None, reference_price: Decimal
    ) -> tuple[Decimal, Decimal | None]:
        """Round an order to precision and refuse it, before sending, if below the minimums.

        ``reference_price`` values a market order for the minimum-cost check. Returns the rounded
        ``(amount, price)``.
        """
        rules = self.rules(symbol)
        if not rules.active:
            raise InvalidOrderError(f"market {symbol} is not active on {self.exchange_id}")
        if amount <= 0:
            raise InvalidOrderError("order amount must be positive")
        rounded_amount = self.amount_to_precision(symbol, amount)
        rounded_price = self.price_to_precision(symbol, price) if price is not None else None
        if rounded_price is not None and rounded_price <= 0:
            raise InvalidOrderError("order price must be positive")
        if rules.min_amount is not None and rounded_amount < rules.min_amount:
            raise BelowMinimumError(
                f"order amount {rounded_amount} {rules.base} is below the minimum amount of "
                f"{rules.min_amount} {rules.base} for {symbol}",
                details={"min_amount": str(rules.min_amount), "amount": str(rounded_amount)},
            )
        if rounded_amount <= 0:
            raise BelowMinimumError(
                f"order amount {amount} {rules.base} rounds to zero at the amount precision of "
                f"{rules.amount_step} {rules.base} for {symbol}",
                details={"amount_step": str(rules.amount_step), "amount": str(amount)},
            )
        cost = rounded_amount * (rounded_price or reference_price)
        if rules.min_cost is not None and cost < rules.min_cost:
            raise BelowMinimumError(
                f"order cost {cost.normalize():f} {rules.quote} is below the minimum cost of "
                f"{rules.min_cost} {rules.quote} for {symbol}",
                details={"min_cost": str(rules.min_cost), "cost": str(cost)},
            )
        return rounded_amount, rounded_price


def _load_markets(exchange_id: str) -> dict[str, dict[str, Any]]:
    from markets.models import MarketSnapshot

    snapshot = (
        MarketSnapshot.objects.filter(exchange=exchange_id).order_by("-fetched_at", "-id").first()
    )
    if snapshot is not None:
        return snapshot.markets
    path = shipped_snapshot_path(exchange_id)
    if not path.exists():
        raise UnknownSymbolError(f"no market data for exchange {exchange_id!r}")
    return json.loads(path.read_text())


_lock = threading.Lock()
_catalogs: dict[str, tuple[float, MarketCatalog]] = {}


def get_catalog(exchange_id: str) -> MarketCatalog:
    """The exchange's catalog, cached per process for ``CATALOG_TTL_SECONDS``."""
    now = time.monotonic()
    with _lock:
        cached = _catalogs.get(exchange_id)
        if cached is not None and now - cached[0] < CATALOG_TTL_SECONDS:
            return cached[1]
    catalog = MarketCatalog(exchange_id, _load_markets(exchange_id))
    with _lock:
        _catalogs[exchange_id] = (now, catalog)
    return catalog


def forget_catalogs() -> None:
    """Drop cached catalogs (after a refresh, and between tests)."""
    with _lock:
        _catalogs.clear()


@cache
def shipped_catalog(exchange_id: str) -> MarketCatalog:
    """The shipped snapshot only, for code that must not touch the database."""
    return MarketCatalog(exchange_id, json.loads(shipped_snapshot_path(exchange_id).read_text()))
