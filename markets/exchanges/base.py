"""The exchange interface every caller uses, and the market rules it enforces.

Results are ccxt-shaped dicts (an order has ``id``, ``clientOrderId``, ``symbol``, ``type``,
``side``, ``price``, ``amount``, ``filled``, ``remaining``, ``average``, ``cost``, ``status``,
``fee`` ...), so that a caller cannot tell the paper exchange from a real one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol


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


@dataclass(frozen=True)
class Position:
    """One open perpetual-swap position, as the exchange reports it.

    ``contracts`` is the position size in contracts (Bitget's USDT-M contracts are 1 base unit);
    ``liquidation_price`` is None when the exchange gives none (Bitget reports 0 for a cross
    position); ``margin`` is the position's initial margin in the settle currency. ``funding``
    is the funding the position received since it opened (negative: paid), when the exchange
    says: the paper exchange does, and Bitget's unified account (``totalFunding``); Bitget's
    classic account answer has no such total (None: its funding is in the account bill, not
    read yet).
    """

    symbol: str
    side: Literal["long", "short"]
    contracts: Decimal
    entry_price: Decimal | None
    mark_price: Decimal | None
    leverage: Decimal | None
    margin_mode: str | None  # "isolated" or "cross"
    unrealized_pnl: Decimal | None
    liquidation_price: Decimal | None
    margin: Decimal | None
    funding: Decimal | None = None


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
        """A stop-loss (``stop_market``) or take-profit (``take_profit_market``) order that
        rests on the exchange and fills as a market order once the price reaches
        ``trigger_price``."""
        ...

    def cancel_order(self, id: str, symbol: str, *, trigger: bool = False) -> dict[str, Any]:
        """``trigger``: the order is a trigger order (exchanges keep those apart)."""
        ...

    def fetch_order(
        self,
        id: str | None,
        symbol: str,
        *,
        client_order_id: str | None = None,
        trigger: bool = False,
    ) -> dict[str, Any]: ...

    def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]: ...


class PerpExchange(Exchange, Protocol):
    """An ``Exchange`` that also trades USDT-margined perpetual swaps (one-way, isolated).

    Optional: the live ccxt adapter and the paper exchange implement it (the paper one with
    isolated margin only, market orders, and ``settle_perps`` for funding and liquidation), so a
    caller that needs perps asks for a ``PerpExchange``. The settings calls are idempotent:
    asking for what is already set is a success that changes nothing.
    """

    def set_position_mode_one_way(self, symbol: str) -> bool: ...

    def set_margin_mode(self, symbol: str, margin_mode: str) -> bool: ...

    def set_leverage(self, symbol: str, leverage: int) -> bool: ...

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
    ) -> dict[str, Any]: ...

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]: ...

    def fetch_funding_rate_history(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]: ...

    def fetch_mark_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[float]]: ...
