"""The breakdowns of a backtest's report, from its stored trades: pure Python, no Django.

What freqtrade's backtest report shows besides the headline metrics (``backtests.metrics``):

- **Months** (:func:`monthly_returns`): every calendar month of the period, in the trader's time
  zone, with the trades CLOSED in it (by ``exit_time``), their profit (sum of ``pnl``) and the
  month's return = that profit / the realised equity at the start of the month (``initial_cash``
  plus the pnl of every trade closed before). Returns compound: the product of ``1 + return``
  over the months is the realised equity at the end / ``initial_cash``, which is the run's
  ``total_return`` when the last trade closed by the end of the data (the engine closes it).
  The calendar (:func:`month_calendar`) lays them out a year per row, shaded on a scale centred
  on zero: ``shade`` = return / the largest absolute monthly return, in [-1, 1].
- **Weekdays** (:func:`weekday_returns`): Monday to Sunday of the exit time, in the time zone.
- **Durations** (:func:`duration_stats`): ``exit_time - entry_time`` in ms (from the entry
  candle's open to the exit candle's open), for all trades, winners (pnl > 0), losers (pnl < 0).
- **Exit reasons** (:func:`exit_reason_table`): count, win rate, average and total profit, most
  frequent first.
- **Best and worst trade**: the highest and lowest ``return_rate`` (the first one on a tie).
- **Streaks** (:func:`longest_streaks`): the most consecutive winners and losers; a trade with
  a pnl of exactly 0 ends both.
- **Costs**: the total of the trades' fees (both sides) and of their funding (perps; signed,
  negative when paid).
- **Chart markers** (:func:`bar_markers`): the trades' entries and exits counted per chart bar.
- **Exposure** (:func:`exposure`): the share of the period's candles during which a position was
  open: ``(exit_time - entry_time)`` per trade, plus the exit candle when the exit filled inside
  it (a stop, a take-profit, a liquidation, the end of the data; a signal exit fills at its open),
  over ``candle_count * bar_ms``. Without gaps in the candles it is the metric ``exposure``.

Every figure is JSON-safe (plain ints, floats, strings; ``None`` where there is nothing).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SIGNAL_EXIT = "signal"


@dataclass(frozen=True)
class TradeRow:
    """One stored trade, in floats (times are candle open times, epoch ms UTC)."""

    seq: int
    side: str
    entry_time: int
    exit_time: int
    pnl: float
    return_rate: float
    fee: float
    funding: float
    exit_reason: str


@dataclass(frozen=True)
class Period:
    """What the run covered: its [start_ms, end_ms), its candles and their spacing."""

    start_ms: int
    end_ms: int
    candle_count: int
    bar_ms: int


def _local(time_ms: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(time_ms / 1000, tz=UTC).astimezone(zone)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _months_between(start_ms: int, end_ms: int, zone: tzinfo) -> list[tuple[int, int]]:
    """Every (year, month) from the one holding ``start_ms`` to the one holding ``end_ms - 1``."""
    first, last = _local(start_ms, zone), _local(max(end_ms - 1, start_ms), zone)
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def monthly_returns(
    trades: Sequence[TradeRow], *, initial_cash: float, period: Period, zone: tzinfo
) -> list[dict[str, Any]]:
    """A row per month of the period (see the module docstring), oldest first."""
    closed: dict[tuple[int, int], list[TradeRow]] = {}
    for trade in sorted(trades, key=lambda t: (t.exit_time, t.seq)):
        moment = _local(trade.exit_time, zone)
        closed.setdefault((moment.year, moment.month), []).append(trade)
    months = sorted(set(_months_between(period.start_ms, period.end_ms, zone)) | set(closed))
    equity = initial_cash
    rows = []
    for year, month in months:
        inside = closed.get((year, month), [])
        profit = sum(trade.pnl for trade in inside)
        wins = sum(1 for trade in inside if trade.pnl > 0)
        rows.append(
            {
                "month": f"{year:04d}-{month:02d}",
                "year": year,
                "number": month,
                "trades": len(inside),
                "wins": wins,
                "win_rate": _rate(wins, len(inside)),
                "profit": profit,
                "return": profit / equity if equity > 0 else None,
                "start_equity": equity,
            }
        )
        equity += profit
    return rows


def month_calendar(months: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The months as a year per row of 12 cells (``None`` outside the period), each with its
    return and a ``shade`` in [-1, 1] centred on zero; the year's compounded return."""
    scale = max((abs(row["return"]) for row in months if row["return"] is not None), default=0.0)
    years: dict[int, list[dict[str, Any] | None]] = {}
    growth: dict[int, float] = {}
    for row in months:
        cells = years.setdefault(row["year"], [None] * 12)
        value = row["return"]
        shade = value / scale if value is not None and scale > 0 else 0.0
        cells[row["number"] - 1] = {"month": row["month"], "return": value, "shade": shade}
        growth[row["year"]] = growth.get(row["year"], 1.0) * (1.0 + (value or 0.0))
    return {
        "month_names": list(MONTH_NAMES),
        "scale": scale,
        "years": [
            {"year": year, "cells": cells, "return": growth[year] - 1.0}
            for year, cells in sorted(years.items())
        ],
    }


def weekday_returns(trades: Sequence[TradeRow], *, zone: tzinfo) -> list[dict[str, Any]]:
    """Monday to Sunday: the trades closed on that day of the week (in ``zone``)."""
    days: list[list[TradeRow]] = [[] for _ in WEEKDAYS]
    for trade in trades:
        days[_local(trade.exit_time, zone).weekday()].append(trade)
    rows = []
    for number, (name, inside) in enumerate(zip(WEEKDAYS, days, strict=True)):
        wins = sum(1 for trade in inside if trade.pnl > 0)
        returns = [trade.return_rate for trade in inside]
        rows.append(
            {
                "weekday": number,
                "name": name,
                "trades": len(inside),
                "wins": wins,
                "win_rate": _rate(wins, len(inside)),
                "profit": sum(trade.pnl for trade in inside),
                "avg_return": statistics.fmean(returns) if returns else None,
            }
        )
    return rows


def _durations(trades: Iterable[TradeRow]) -> dict[str, Any]:
    spans = [trade.exit_time - trade.entry_time for trade in trades]
    if not spans:
        return {"trades": 0, "mean": None, "median": None, "min": None, "max": None}
    return {
        "trades": len(spans),
        "mean": statistics.fmean(spans),
        "median": float(statistics.median(spans)),
        "min": min(spans),
        "max": max(spans),
    }


def duration_stats(trades: Sequence[TradeRow]) -> dict[str, dict[str, Any]]:
    """How long trades stayed open, in ms: all of them, the winners and the losers."""
    return {
        "all": _durations(trades),
        "winners": _durations(trade for trade in trades if trade.pnl > 0),
        "losers": _durations(trade for trade in trades if trade.pnl < 0),
    }


def exit_reason_table(trades: Sequence[TradeRow]) -> list[dict[str, Any]]:
    """A row per exit reason that occurred, the most frequent first (then by name)."""
    groups: dict[str, list[TradeRow]] = {}
    for trade in trades:
        groups.setdefault(trade.exit_reason, []).append(trade)
    rows = []
    for reason, inside in groups.items():
        wins = sum(1 for trade in inside if trade.pnl > 0)
        profit = sum(trade.pnl for trade in inside)
        rows.append(
            {
                "reason": reason,
                "trades": len(inside),
                "wins": wins,
                "win_rate": wins / len(inside),
                "avg_profit": profit / len(inside),
                "profit": profit,
                "avg_return": statistics.fmean(trade.return_rate for trade in inside),
            }
        )
    return sorted(rows, key=lambda row: (-row["trades"], row["reason"]))


def longest_streaks(trades: Sequence[TradeRow]) -> dict[str, int]:
    """The most consecutive winning and losing trades, in the order they happened."""
    longest = {"wins": 0, "losses": 0}
    current = {"wins": 0, "losses": 0}
    for trade in sorted(trades, key=lambda t: t.seq):
        kind = "wins" if trade.pnl > 0 else "losses" if trade.pnl < 0 else None
        for name in current:
            current[name] = current[name] + 1 if name == kind else 0
            longest[name] = max(longest[name], current[name])
    return longest


def _trade_summary(trade: TradeRow | None) -> dict[str, Any] | None:
    if trade is None:
        return None
    return {
        "seq": trade.seq,
        "side": trade.side,
        "entry_time": trade.entry_time,
        "exit_time": trade.exit_time,
        "pnl": trade.pnl,
        "return": trade.return_rate,
        "exit_reason": trade.exit_reason,
    }


def best_and_worst(trades: Sequence[TradeRow]) -> tuple[TradeRow | None, TradeRow | None]:
    """The trades with the highest and the lowest return (the earliest one on a tie)."""
    ordered = sorted(trades, key=lambda t: t.seq)
    if not ordered:
        return None, None
    best = max(ordered, key=lambda t: t.return_rate)
    worst = min(ordered, key=lambda t: t.return_rate)
    return best, worst


def exposure(trades: Sequence[TradeRow], period: Period) -> float | None:
    """The share of the period's candles spent in a position (see the module docstring)."""
    if period.candle_count <= 0 or period.bar_ms <= 0:
        return None
    held = sum(
        trade.exit_time
        - trade.entry_time
        + (period.bar_ms if trade.exit_reason != SIGNAL_EXIT else 0)
        for trade in trades
    )
    return min(held / (period.candle_count * period.bar_ms), 1.0)


def backtest_breakdown(
    trades: Sequence[TradeRow], *, initial_cash: float, period: Period, zone: tzinfo
) -> dict[str, Any]:
    """Every breakdown of the module docstring, as one JSON-safe dict."""
    months = monthly_returns(trades, initial_cash=initial_cash, period=period, zone=zone)
    best, worst = best_and_worst(trades)
    return {
        "time_zone": str(zone),
        "months": months,
        "calendar": month_calendar(months),
        "weekdays": weekday_returns(trades, zone=zone),
        "durations": duration_stats(trades),
        "exit_reasons": exit_reason_table(trades),
        "best_trade": _trade_summary(best),
        "worst_trade": _trade_summary(worst),
        "streaks": longest_streaks(trades),
        "fees": sum(trade.fee for trade in trades),
        "funding": sum(trade.funding for trade in trades),
        "exposure": exposure(trades, period),
    }


def bar_markers(trades: list[TradeRow], start_ms: int, bar_ms: int) -> list[dict[str, Any]]:
    """The trades' entries and exits grouped per chart bar, in time order: one marker per bar,
    kind and side (and, for exits, win or not) with ``count`` trades, so their number stays
    bounded by the bars' whatever the number of trades. The page groups them further when
    they are closer than a few pixels (``static/js/backtest_detail.js``)."""

    def bar_of(time_ms: int) -> int:
        return start_ms + (time_ms - start_ms) // bar_ms * bar_ms

    groups: dict[tuple[int, str, str, bool | None], int] = {}
    for trade in trades:
        entry = (bar_of(trade.entry_time), "entry", trade.side, None)
        exit_ = (bar_of(trade.exit_time), "exit", trade.side, trade.pnl > 0)
        for key in (entry, exit_):
            groups[key] = groups.get(key, 0) + 1
    markers = []
    for (time, kind, side, won), count in groups.items():
        marker: dict[str, Any] = {"time": time, "kind": kind, "side": side, "count": count}
        if kind == "exit":
            marker["won"] = won
        markers.append(marker)
    order = {"entry": 0, "exit": 1}
    return sorted(
        markers, key=lambda m: (m["time"], order[m["kind"]], m["side"], bool(m.get("won")))
    )
