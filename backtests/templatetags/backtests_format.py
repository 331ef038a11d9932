"""Template filters of the backtest, sweep and schedule pages: how numbers and times read.

Money is shown with 2 decimals, percentages (of fractions: ``0.0512`` → ``5.12 %``) and ratios
with 2, prices with the market's own precision when it is known. Epoch-millisecond times become
aware datetimes, so that ``|date`` shows them in the trader's time zone like any other time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django import template
from django.template.defaultfilters import floatformat

from backtests.models import BacktestTrade

register = template.Library()

MISSING = "—"
# key → (label, kind); the order is the metrics table's.
METRICS: dict[str, tuple[str, str]] = {
    "total_return": ("Total return", "percent"),
    "final_equity": ("Final equity", "money"),
    "cagr": ("CAGR", "percent"),
    "max_drawdown": ("Max drawdown", "percent"),
    "max_drawdown_duration": ("Longest drawdown", "duration"),
    "sharpe": ("Sharpe ratio", "ratio"),
    "sortino": ("Sortino ratio", "ratio"),
    "calmar": ("Calmar ratio", "ratio"),
    "trade_count": ("Trades", "count"),
    "win_rate": ("Win rate", "percent"),
    "profit_factor": ("Profit factor", "ratio"),
    "expectancy": ("Expectancy per trade", "money"),
    "avg_trade_pnl": ("Average trade PnL", "money"),
    "avg_trade_return": ("Average trade return", "percent"),
    "exposure": ("Time in the market", "percent"),
    "buy_and_hold_return": ("Buy-and-hold return", "percent"),
    "funding_fees": ("Funding received", "money"),
    "liquidations": ("Liquidations", "count"),
}
# Shown only for a run that has them (a perp run: funding, or a liquidation).
PERP_METRICS = ("funding_fees", "liquidations")
_DURATION_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000))


def _missing(value: Any) -> bool:
    return value is None or value == ""


@register.filter
def percent(value: Any) -> str:
    """A fraction as a percentage with 2 decimals: ``0.0512`` → ``5.12 %``."""
    return MISSING if _missing(value) else f"{floatformat(float(value) * 100, 2)} %"


@register.filter
def points(value: Any) -> str:
    """A difference of two fractions in percentage points: ``0.031`` → ``3.10 points``."""
    return MISSING if _missing(value) else f"{floatformat(float(value) * 100, 2)} points"


@register.filter
def money(value: Any) -> str:
    return MISSING if _missing(value) else floatformat(value, 2)


@register.filter
def ratio(value: Any) -> str:
    return MISSING if _missing(value) else floatformat(value, 2)


@register.filter
def price(value: Any, decimals: int | None = None) -> str:
    """A price with the market's decimals, or up to 8 when they are unknown."""
    if _missing(value):
        return MISSING
    return floatformat(value, decimals if decimals is not None else -8)


@register.filter
def duration(milliseconds: Any) -> str:
    """``93_600_000`` → ``1 d 2 h``: the two largest units."""
    if _missing(milliseconds):
        return MISSING
    left = int(milliseconds)
    parts: list[str] = []
    for unit, size in _DURATION_UNITS:
        if parts or left >= size:  # after the first unit, the next one even when it is 0
            parts.append(f"{left // size} {unit}")
            left %= size
    return " ".join(parts[:2]) or "0 min"


_KINDS = {"percent": percent, "money": money, "ratio": ratio, "duration": duration}


@register.filter
def metric(value: Any, key: str) -> str:
    """A metric's value as its kind reads (``metric:"sharpe"``)."""
    kind = METRICS.get(key, ("", "ratio"))[1]
    if kind == "count":
        return MISSING if _missing(value) else str(int(value))
    return _KINDS[kind](value)


@register.filter
def metric_label(key: str) -> str:
    return METRICS.get(key, (key.replace("_", " ").capitalize(), ""))[0]


@register.simple_tag
def metric_rows(metrics: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """``(key, label, text)`` for every metric, in the table's order."""
    values = metrics or {}
    perp = any(values.get(key) for key in PERP_METRICS)
    return [
        (key, label, metric(values.get(key), key))
        for key, (label, _) in METRICS.items()
        if perp or key not in PERP_METRICS
    ]


@register.filter
def ms_datetime(milliseconds: Any) -> datetime | None:
    """Epoch milliseconds (UTC) as an aware datetime, for ``|date``."""
    if _missing(milliseconds):
        return None
    return datetime.fromtimestamp(int(milliseconds) / 1000, tz=UTC)


@register.filter
def exit_reason_label(reason: str) -> str:
    """A trade's exit reason as the trades table reads it (``stop_loss`` → ``Stop Loss``)."""
    try:
        return str(BacktestTrade.ExitReason(reason).label)
    except ValueError:
        return reason.replace("_", " ").capitalize()


@register.filter
def absolute(value: Any) -> Any:
    return value if _missing(value) else abs(value)


@register.filter
def get_item(mapping: dict[str, Any] | None, key: str) -> Any:
    return (mapping or {}).get(key)
