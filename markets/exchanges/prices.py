"""Where the paper exchange gets its prices and its clock.

A ``PriceSource`` answers two questions: the *reference price* of a symbol (what a market order
placed now fills at, before the paper exchange's slippage) and the market time now (epoch ms).

- ``ReplayPrices``: a replay of stored candles (``markets.replay``). The reference price is the open
  of the next candle, the first one not yet closed; the time is the replay's market time.
- ``LatestPrices``: live paper trading. The reference price is the last traded price of a real
  exchange's ticker; the time is the wall clock.
- ``FixedPrices``: prices and a time set by hand (tests, scripts, what-if runs).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from markets.decimals import finite_decimal
from markets.exchanges.errors import ExchangeError, TransientExchangeError
from markets.replay import ReplayFeed, replay_candle_from


class PriceSource(Protocol):
    def reference_price(self, symbol: str) -> Decimal:
        """The price a market order placed now fills at, before slippage."""
        ...

    def now_ms(self) -> int:
        """Market time now, epoch milliseconds UTC."""
        ...


class TickerSource(Protocol):
    def fetch_ticker(self, symbol: str) -> dict[str, Any]: ...


class ReplayEndedError(ExchangeError):
    """The replay's market time has passed the last stored candle: there is no price to use."""

    default_code = "replay_ended"
    default_status = 409


class NoPriceError(ExchangeError):
    default_code = "no_price"
    default_status = 503


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


class ReplayPrices:
    """Prices of a replay, read from the stored candles of ``exchange`` at the feed's timeframe.

    Market time is the feed's at the ``clock``, until ``at_ms`` is set: then it is ``at_ms``
    whatever the clock says. A replay bot sets it to the close of the candle it is acting on
    (``bots.services.markets.BotMarket.move_to``), so that its orders fill at the next candle's
    open even when it acts on that candle late, catching up.
    """

    def __init__(
        self,
        exchange: str,
        feed: ReplayFeed,
        clock: Callable[[], float] = time.time,
        *,
        at_ms: int | None = None,
    ) -> None:
        self.exchange = exchange
        self.feed = feed
        self.clock = clock
        self.at_ms = at_ms

    def now_ms(self) -> int:
        if self.at_ms is not None:
            return self.at_ms
        return self.feed.market_time(self.clock())

    def reference_price(self, symbol: str) -> Decimal:
        step = self.feed.timeframe_ms
        next_open = self.now_ms() // step * step
        candle = replay_candle_from(self.exchange, symbol, self.feed.timeframe, next_open)
        if candle is None:
            raise replay_ended_error(self.exchange, symbol, self.feed.timeframe, next_open)
        return Decimal(candle.open)


def replay_ended_error(
    exchange: str, symbol: str, timeframe: str, next_open: int
) -> ReplayEndedError:
    """The replay of ``symbol`` needs a candle opening at or after ``next_open``, and none is
    stored."""
    return ReplayEndedError(
        f"the replay has run past the stored data: no {timeframe} candle of "
        f"{symbol} on {exchange} opens at or after {_iso(next_open)}",
        details={"symbol": symbol, "timeframe": timeframe, "next_open_time": next_open},
    )


class LatestPrices:
    """Live paper trading: the last price of a real exchange's ticker, and the wall clock."""

    def __init__(
        self,
        exchange_id: str,
        ticker_source: TickerSource,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.exchange_id = exchange_id
        self.ticker_source = ticker_source
        self.clock = clock

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def reference_price(self, symbol: str) -> Decimal:
        ticker = self.ticker_source.fetch_ticker(symbol)
        last = ticker.get("last")
        if last is None:
            last = ticker.get("close")
        price = _positive_decimal(last)
        if price is None:
            raise TransientExchangeError(
                f"{self.exchange_id} gave no last price for {symbol} (got {last!r})",
                details={"symbol": symbol},
            )
        return price


class FixedPrices:
    """Prices and market time set by hand. Change them with ``set_price`` and ``now``."""

    def __init__(self, prices: Mapping[str, Decimal | str | int], now_ms: int) -> None:
        self.prices: dict[str, Decimal] = {}
        for symbol, price in prices.items():
            self.set_price(symbol, price)
        self.now = now_ms

    def set_price(self, symbol: str, price: Decimal | str | int) -> None:
        value = _positive_decimal(price)
        if value is None:
            raise ValueError(f"price of {symbol} must be a positive number, not {price!r}")
        self.prices[symbol] = value

    def now_ms(self) -> int:
        return self.now

    def reference_price(self, symbol: str) -> Decimal:
        try:
            return self.prices[symbol]
        except KeyError:
            raise NoPriceError(f"no price set for {symbol}", details={"symbol": symbol}) from None


def _positive_decimal(value: Any) -> Decimal | None:
    number = finite_decimal(value)
    if number is None or number <= 0 or not math.isfinite(float(number)):
        return None
    return number
