"""Reads behind a finished backtest's report: its trades as the pure breakdowns take them, the
breakdowns themselves, its strategy's indicators over its candles, and the rows of its export.
The caller has already fetched the backtest through an owner-scoped selector
(``backtests.selectors.backtest_get``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from backtests.models import Backtest, BacktestTrade
from backtests.montecarlo import returns_on_equity, runs_for, trade_monte_carlo
from backtests.report import Period, TradeRow, backtest_breakdown
from markets import selectors as market_selectors
from markets.timeframes import timeframe_ms
from strategies.params import StrategyParamError
from strategies.plots import indicator_chart
from strategies.registry import UnknownStrategyError, active
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

# Past this many candles the page draws no indicator: the whole period would be read and
# computed on every view of the page.
INDICATOR_MAX_CANDLES = 100_000
# Every column of a trade, in the export's order (CSV header, JSON keys).
EXPORT_COLUMNS = (
    "seq",
    "side",
    "entry_time",
    "entry_time_iso",
    "exit_time",
    "exit_time_iso",
    "entry_price",
    "exit_price",
    "qty",
    "fee",
    "pnl",
    "return",
    "exit_reason",
    "leverage",
    "funding",
)
_TRADE_FIELDS = (
    "seq",
    "side",
    "entry_time",
    "exit_time",
    "pnl",
    "return_rate",
    "fee",
    "funding",
    "exit_reason",
)


def backtest_trade_rows(*, backtest: Backtest) -> list[TradeRow]:
    """Every trade of the backtest, in order, in floats (for the breakdowns and the chart)."""
    rows = (
        BacktestTrade.objects.filter(backtest=backtest).order_by("seq").values_list(*_TRADE_FIELDS)
    )
    return [
        TradeRow(
            seq=seq,
            side=side,
            entry_time=entry_time,
            exit_time=exit_time,
            pnl=float(pnl),
            return_rate=float(rate),
            fee=float(fee),
            funding=float(funding),
            exit_reason=reason,
        )
        for seq, side, entry_time, exit_time, pnl, rate, fee, funding, reason in rows
    ]


def _period(backtest: Backtest) -> Period:
    return Period(
        start_ms=backtest.start_ms,
        end_ms=backtest.end_ms,
        candle_count=backtest.candle_count,
        bar_ms=timeframe_ms(backtest.timeframe),
    )


def backtest_report_breakdown(
    *, backtest: Backtest, zone: tzinfo, trades: list[TradeRow] | None = None
) -> dict[str, Any]:
    """The breakdowns of ``backtests.report`` (months and weekdays in ``zone``) and the Monte
    Carlo of the trades (``monte_carlo``: None for fewer than 2 trades)."""
    if trades is None:
        trades = backtest_trade_rows(backtest=backtest)
    initial_cash = float(backtest.initial_cash)
    breakdown = backtest_breakdown(
        trades, initial_cash=initial_cash, period=_period(backtest), zone=zone
    )
    breakdown["monte_carlo"] = backtest_monte_carlo(trades=trades, initial_cash=initial_cash)
    return breakdown


def backtest_monte_carlo(*, trades: list[TradeRow], initial_cash: float) -> dict[str, Any] | None:
    """``backtests.montecarlo`` over the trades' returns on equity, in trade order, with
    ``runs_for`` runs (1,000 up to 300 trades); None for fewer than 2 trades or an equity that
    went to zero."""
    returns = returns_on_equity([trade.pnl for trade in trades], initial_cash=initial_cash)
    if returns is None:
        return None
    result = trade_monte_carlo(returns, initial_cash=initial_cash, runs=runs_for(len(returns)))
    return result.as_dict() if result is not None else None


def backtest_indicators(
    *, backtest: Backtest, bar_ms: int, start_ms: int, price_decimals: int | None
) -> list[dict[str, Any]] | None:
    """The strategy's plots over the backtest's candles, on the chart's bars
    (``strategies.plots.indicator_chart``); None when they cannot be drawn: too many candles
    (``INDICATOR_MAX_CANDLES``), or a strategy that no longer exists or takes these parameters."""
    if backtest.candle_count > INDICATOR_MAX_CANDLES:
        return None
    try:
        strategy = active().create(backtest.strategy_id, backtest.params)
    except (UnknownStrategyError, StrategyParamError) as error:
        logger.info(
            "backtest.indicators_unavailable",
            extra=context(backtest_id=backtest.pk, reason=type(error).__name__),
        )
        return None
    if not strategy.plots:
        return []
    candles = market_selectors.candles_frame(
        exchange=backtest.exchange,
        symbol=backtest.symbol,
        timeframe=backtest.timeframe,
        start_ms=backtest.start_ms,
        end_ms=backtest.end_ms,
    )
    return indicator_chart(
        strategy, candles, bar_ms=bar_ms, start_ms=start_ms, price_decimals=price_decimals
    )


def backtest_export_rows(*, backtest: Backtest) -> Iterator[dict[str, Any]]:
    """Every trade with every column (``EXPORT_COLUMNS``), in order: decimals as the exact
    stored text, times as epoch ms and as ISO 8601 in UTC."""
    trades = BacktestTrade.objects.filter(backtest=backtest).order_by("seq")
    for trade in trades.iterator(chunk_size=2000):
        yield {
            "seq": trade.seq,
            "side": trade.side,
            "entry_time": trade.entry_time,
            "entry_time_iso": _iso(trade.entry_time),
            "exit_time": trade.exit_time,
            "exit_time_iso": _iso(trade.exit_time),
            "entry_price": _text(trade.entry_price),
            "exit_price": _text(trade.exit_price),
            "qty": _text(trade.qty),
            "fee": _text(trade.fee),
            "pnl": _text(trade.pnl),
            "return": trade.return_rate,
            "exit_reason": trade.exit_reason,
            "leverage": trade.leverage,
            "funding": _text(trade.funding),
        }


def _text(value: Decimal) -> str:
    """A Decimal as the API writes it (``DecimalText``): no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def _iso(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
