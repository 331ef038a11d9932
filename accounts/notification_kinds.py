"""The kinds of notification a channel can subscribe to, and their phone-sized templates.

Pure: no Django. Callers (bots, backtests, the daily summary, the staff alerts) pass a kind and
the facts; ``render`` makes the short title and body that a phone shows in one glance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Kind -> what the trader reads on the channel's form.
KINDS: dict[str, str] = {
    "order_filled": "Order filled",
    "trade_closed": "Trade closed (with PnL)",
    "exit": "Stop-loss / take-profit / liquidation exit",
    "bot_error": "Bot error",
    "bot_stopped": "Bot stopped",
    "exchange_unreachable": "Exchange unreachable",
    "exchange_recovered": "Exchange back",
    "daily_loss_limit": "Daily loss limit hit",
    "backtest_finished": "Backtest, sweep, optimisation or walk-forward finished",
    "daily_summary": "Daily summary",
    "system_alert": "System alerts (staff only)",
}
# Sent whatever a channel subscribes to: the trader asked for it.
TEST = "test"

TEMPLATES: dict[str, tuple[str, str]] = {
    "order_filled": ("{bot}: {side} filled", "{qty} {symbol} @ {price}"),
    "trade_closed": ("{bot}: trade closed {pnl}", "{symbol} sold {qty} @ {price}, PnL {pnl}"),
    "exit": ("{bot}: {reason} exit", "{symbol} {side} {qty} @ {price}, PnL {pnl}"),
    "bot_error": ("{bot}: error", "{message}"),
    "bot_stopped": ("{bot}: stopped", "{message}"),
    "exchange_unreachable": ("{bot}: exchange unreachable", "{message}"),
    "exchange_recovered": ("{bot}: exchange back", "{message}"),
    "daily_loss_limit": ("{bot}: daily loss limit hit", "{message}"),
    "backtest_finished": ("{what} {name} {status}", "{message}"),
    "daily_summary": ("Daily summary {date}", "{message}"),
    "system_alert": ("System alert: {what}", "{message}"),
    TEST: ("Test message", "Notifications to {channel} work."),
}
MAX_BODY = 1000


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render(kind: str, facts: Mapping[str, Any]) -> tuple[str, str]:
    """The title and body of a ``kind`` notification from ``facts`` (a missing fact shows as
    ``?`` rather than failing: a notification is never worth an exception)."""
    title, body = TEMPLATES.get(kind, ("{title}", "{message}"))
    values = _Blank({k: v for k, v in facts.items() if v is not None})
    return title.format_map(values)[:200], body.format_map(values)[:MAX_BODY]


def batch_text(items: list[tuple[str, str]]) -> tuple[str, str]:
    """One message for a burst: the first title and a count, then one line per notification."""
    if len(items) == 1:
        return items[0]
    title = f"{items[0][0]} (+{len(items) - 1} more)"
    lines = [f"• {title_}: {body}" for title_, body in items]
    return title[:200], "\n".join(lines)[: MAX_BODY * 4]
