"""The market side of the paper exchange's perps: swap rules, stored funding rates and mark
candles, funding settlement and the liquidation check. The rules are in ``paper_perp``'s
docstring; ``paper_perp`` calls these inside its transactions, on rows it has locked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, Protocol

from markets import perp
from markets.exchanges import ccxt_swap
from markets.exchanges import paper_ledger as ledger
from markets.exchanges.base import MarketRules
from markets.exchanges.errors import ExchangeError, InvalidOrderError
from markets.exchanges.markets import MarketCatalog
from markets.exchanges.paper_results import fmt_decimal, iso_time
from markets.exchanges.prices import PriceSource
from markets.models import (
    Candle,
    ExchangeAccount,
    FundingRate,
    MarkCandle,
    PaperBalance,
    PaperOrder,
    PaperPosition,
)
from markets.timeframes import TimeframeError, timeframe_ms

FLAT = PaperPosition.Side.FLAT
UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}
ZERO = Decimal(0)


class PaperHost(Protocol):
    """What the perps use of ``PaperExchange`` (which they cannot import: it imports them)."""

    account: ExchangeAccount
    exchange_id: str
    catalog: MarketCatalog
    prices: PriceSource

    def taker_fee(self, rules: MarketRules) -> Decimal: ...

    def _fill_price(self, symbol: str, side: str, reference: Decimal) -> Decimal: ...

    def _check_client_order_id(self, client_order_id: str | None) -> None: ...

    def _insert(self, **fields: Any) -> PaperOrder: ...

    def _order_dict(self, order: PaperOrder) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SwapMarket:
    rules: MarketRules
    settle: str  # the margin currency (USDT)
    contract_size: Decimal
    max_leverage: int
    tiers: tuple[perp.MaintenanceTier, ...]

    def base_qty(self, contracts: Decimal) -> Decimal:
        return contracts * self.contract_size


class Bar(NamedTuple):
    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


def swap_market(catalog: MarketCatalog, symbol: str) -> SwapMarket:
    """The rules of a USDT-margined perp; an ``InvalidOrderError`` for any other market."""
    market = catalog.market(symbol)  # UnknownSymbolError
    ccxt_swap.check_swap(market)
    if not market.get("linear"):
        raise InvalidOrderError(
            f"{symbol} is an inverse swap; the paper exchange trades USDT-margined ones",
            details={"symbol": [f"{symbol} is not a linear (USDT-margined) swap."]},
        )
    leverage = (market.get("limits") or {}).get("leverage") or {}
    limit = ccxt_swap.decimal_or_none(leverage.get("max"))
    return SwapMarket(
        rules=catalog.rules(symbol),
        settle=market.get("settle") or market["quote"],
        contract_size=ccxt_swap.decimal_or_none(market.get("contractSize")) or Decimal(1),
        max_leverage=int(limit) if limit is not None else perp.MAX_LEVERAGE,
        tiers=ccxt_swap.market_tiers(market),
    )


# --- stored market data ---------------------------------------------------------------------------


def funding_rate_history(
    host: PaperHost, symbol: str, since: int | None, limit: int | None
) -> list[dict[str, Any]]:
    """Stored funding rates up to the market time, oldest first, shaped as ccxt's."""
    rows = FundingRate.objects.filter(
        exchange=host.exchange_id, symbol=symbol, funding_time__lte=host.prices.now_ms()
    )
    return [
        {
            "info": {
                "symbol": symbol,
                "fundingRate": fmt_decimal(r.rate),
                "fundingTime": str(r.funding_time),
            },
            "symbol": symbol,
            "fundingRate": float(r.rate),
            "timestamp": r.funding_time,
            "datetime": iso_time(r.funding_time),
        }
        for r in window(rows, "funding_time", since, limit)
    ]


def mark_ohlcv(
    host: PaperHost, symbol: str, timeframe: str, since: int | None, limit: int | None
) -> list[list[Any]]:
    """Stored mark-price candles closed at the market time, as ``fetch_ohlcv`` serves candles
    (a volume the source did not give is None, as ccxt gives it)."""
    step = timeframe_step(timeframe)
    rows = MarkCandle.objects.filter(
        exchange=host.exchange_id, symbol=symbol, timeframe=timeframe,
        open_time__lte=host.prices.now_ms() - step,
    )  # fmt: skip
    return [
        [c.open_time, float(c.open), float(c.high), float(c.low), float(c.close),
         None if c.volume is None else float(c.volume)]
        for c in window(rows, "open_time", since, limit)
    ]  # fmt: skip


# --- funding and liquidation ----------------------------------------------------------------------


def settle_funding(
    host: PaperHost, market: SwapMarket, position: PaperPosition,
    rows: dict[str, PaperBalance], until: int, bars: Sequence[Bar], timeframe: str | None = None,
) -> None:  # fmt: skip
    """Charge or pay the funding times in ``(last_funding_ms, until]`` (rows locked)."""
    if position.side == FLAT:
        return
    rates = FundingRate.objects.filter(
        exchange=host.exchange_id, symbol=market.rules.symbol,
        funding_time__gt=position.last_funding_ms, funding_time__lte=until,
    ).order_by("funding_time")  # fmt: skip
    for rate in rates:
        mark = mark_at(host, market.rules.symbol, rate.funding_time, bars, position, timeframe)
        payment = ledger.round_amount(
            perp.funding_payment(position.side, market.base_qty(position.qty), mark, rate.rate)
        )
        row = ledger.balance_row(host.account, rows, market.settle)
        row.free += payment
        if row.free < 0:  # more than the free balance: the rest comes out of the margin
            position.margin = max(position.margin + row.free, ZERO)
            row.free = ZERO
        position.funding += payment
        position.last_funding_ms = rate.funding_time


def mark_at(
    host: PaperHost, symbol: str, time: int, bars: Sequence[Bar], position: PaperPosition,
    timeframe: str | None = None,
) -> Decimal:  # fmt: skip
    """The mark price at funding time ``time``: the open at ``time`` of the stored mark candle of
    ``timeframe`` (the trade candles'), else of the shortest stored one (sources differ: the
    sample's 1h and 8h marks do); else the trade candle's open at ``time`` (passed or stored),
    else the last trade close before it."""
    exchange = host.exchange_id
    marks = MarkCandle.objects.filter(exchange=exchange, symbol=symbol, open_time=time)
    ranked = sorted(
        marks.values_list("timeframe", "open"),
        key=lambda mark: (mark[0] != timeframe, timeframe_step(mark[0])),
    )
    if ranked:
        return ranked[0][1]
    candidates = [(b.open_time, b.open, b.close) for b in bars if b.open_time <= time][-1:]
    stored = (
        Candle.objects.filter(exchange=exchange, symbol=symbol, open_time__lte=time)
        .order_by("-open_time", "timeframe")
        .first()
    )
    if stored is not None:
        candidates.append((stored.open_time, stored.open, stored.close))
    if candidates:
        open_time, open_, close = max(candidates, key=lambda item: item[0])
        return open_ if open_time == time else close
    assert position.entry_price is not None
    return position.entry_price  # no price at all before the funding time


def liquidated_in(
    host: PaperHost, market: SwapMarket, position: PaperPosition, bar: Bar,
    timeframe: str | None,
) -> bool:  # fmt: skip
    """Whether the open position's liquidation price is reached in ``bar``: on the mark candle of
    the same timeframe and open time when stored, else on the trade candle."""
    if position.side == FLAT or position.liquidation_price is None:
        return False
    assert position.opened_at_ms is not None
    if bar.open_time < position.opened_at_ms:
        return False  # a candle before the position opened
    high, low = bar.high, bar.low
    if timeframe is not None:
        mark = MarkCandle.objects.filter(
            exchange=host.exchange_id, symbol=market.rules.symbol, timeframe=timeframe,
            open_time=bar.open_time,
        ).first()  # fmt: skip
        if mark is not None:
            high, low = mark.high, mark.low
    return perp.is_liquidated(position.side, position.liquidation_price, low, high)


# --- helpers --------------------------------------------------------------------------------------


def timeframe_step(timeframe: str) -> int:
    """A timeframe's length in ms: the candle timeframes, and any ``<n>m|h|d`` of mark candles
    (Bitget's funding-interval ``8h``)."""
    try:
        return timeframe_ms(timeframe)
    except TimeframeError as error:
        match = re.fullmatch(r"([1-9][0-9]{0,2})([mhd])", timeframe)
        if match is None:
            raise ExchangeError(str(error), code="unknown_timeframe", status=400) from None
        return int(match[1]) * UNIT_MS[match[2]]


def window(rows: Any, key: str, since: int | None, limit: int | None) -> list[Any]:
    """``rows`` oldest first: the first ``limit`` from ``since`` on, else the newest ``limit``."""
    if limit is not None and limit <= 0:
        raise ExchangeError("limit must be positive", code="invalid_limit", status=400)
    if since is not None:
        ordered = rows.filter(**{f"{key}__gte": since}).order_by(key)
        return list(ordered[:limit] if limit is not None else ordered)
    newest = rows.order_by(f"-{key}")
    return list(reversed(newest[:limit] if limit is not None else newest))


def to_bar(candle: Any) -> Bar:
    """A ``Candle`` or an OHLCV row as a ``Bar`` of Decimals."""
    if isinstance(candle, Candle):
        return Bar(candle.open_time, Decimal(candle.open), Decimal(candle.high),
                   Decimal(candle.low), Decimal(candle.close))  # fmt: skip
    open_time, open_, high, low, close = candle[:5]
    return Bar(int(open_time), *(Decimal(str(value)) for value in (open_, high, low, close)))
