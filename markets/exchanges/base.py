"""The exchange interface every caller uses, and the market rules it enforces.

Results are ccxt-shaped dicts (an order has ``id``, ``clientOrderId``, ``symbol``, ``type``,
``side``, ``price``, ``amount``, ``filled``, ``remaining``, ``average``, ``cost``, ``status``,
``fee`` ...), so that a caller cannot tell the paper exchange from a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True)
class MarketRules:
    """What the exchange accepts for one market, read from its market metadata."""

    symbol: str
    base: str
    quote: str
    type: str  # "spot", "swap", ...
    amount_step: Decimal | None  # smallest amount increment (ccxt TICK_SIZE precision)
    price_step: Decimal | None
    min_amount: Decimal | None
    min_cost: Decimal | None
    maker_fee: Decimal
    taker_fee: Decimal
    active: bool = True


class Exchange(Protocol):
    exchange_id: str

    def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]: ...

    def market_rules(self, symbol: str) -> MarketRules: ...

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[float]]: ...

    def fetch_ticker(self, symbol: str) -> dict[str, Any]: ...

    def fetch_balance(self) -> dict[str, Any]: ...

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: Decimal,
        price: Decimal | None = None,
        *,
        client_order_id: str | None = None,
    ) -> dict[str, Any]: ...

    def cancel_order(self, id: str, symbol: str) -> dict[str, Any]: ...

    def fetch_order(
        self, id: str | None, symbol: str, *, client_order_id: str | None = None
    ) -> dict[str, Any]: ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]: ...
