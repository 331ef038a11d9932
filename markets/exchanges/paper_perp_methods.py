"""The paper exchange's ``base.PerpExchange`` methods, as a base class of ``PaperExchange``:
each hands the call to ``paper_perp.PaperPerps`` (the rules and the work are there)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from markets.exchanges.base import Position
from markets.exchanges.paper_perp import PaperPerps
from markets.exchanges.paper_perp_funding import PaperHost


class PaperPerpMethods:
    def set_position_mode_one_way(self, symbol: str) -> bool:
        return PaperPerps(self._host()).set_position_mode_one_way(symbol)

    def set_margin_mode(self, symbol: str, margin_mode: str) -> bool:
        return PaperPerps(self._host()).set_margin_mode(symbol, margin_mode)

    def set_leverage(self, symbol: str, leverage: int) -> bool:
        return PaperPerps(self._host()).set_leverage(symbol, leverage)

    def create_perp_order(
        self, symbol: str, type: str, side: str, amount: Decimal, price: Decimal | None = None,
        *, reduce_only: bool = False, client_order_id: str | None = None,
        margin_mode: str = "isolated",
    ) -> dict[str, Any]:  # fmt: skip
        """A market order on a swap; ``price`` is ignored (paper perp orders are market only)."""
        return PaperPerps(self._host()).create_perp_order(
            symbol, type, side, amount, reduce_only=reduce_only,
            client_order_id=client_order_id, margin_mode=margin_mode,
        )  # fmt: skip

    def fetch_positions(self, symbols: list[str] | None = None) -> list[Position]:
        return PaperPerps(self._host()).fetch_positions(symbols)

    def fetch_funding_rate_history(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return PaperPerps(self._host()).fetch_funding_rate_history(symbol, since, limit)

    def fetch_mark_ohlcv(
        self, symbol: str, timeframe: str, since: int | None = None, limit: int | None = None
    ) -> list[list[Any]]:
        return PaperPerps(self._host()).fetch_mark_ohlcv(symbol, timeframe, since, limit)

    def settle_perps(
        self, symbol: str, candles: Iterable[Any], *, timeframe: str | None = None
    ) -> list[dict[str, Any]]:
        """Funding and liquidation over the candles closed since the last call (see
        ``paper_perp``); the liquidation orders."""
        return PaperPerps(self._host()).settle_perps(symbol, candles, timeframe=timeframe)

    def settle_funding_due(self, symbol: str, until_ms: int | None = None) -> None:
        """Charge the funding due up to ``until_ms`` (else now) on the open position (see
        ``paper_perp``)."""
        PaperPerps(self._host()).settle_funding_due(symbol, until_ms)

    def _host(self) -> PaperHost:
        return cast(PaperHost, self)  # only PaperExchange inherits these methods
