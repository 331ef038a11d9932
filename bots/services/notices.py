"""What a bot tells its owner's notification channels: its fills and exits, its errors, its
stops, an exchange that stops answering and comes back, the daily loss limit.

Two hooks, called where every such thing is already recorded: ``trades_filled`` where a fill is
reported (``orders._report_order``) and ``event_recorded`` where the bot's own log is written
(``events.bot_event``). Both call ``accounts.notifications.notify`` in the tick's transaction, which
writes outbox rows and never raises, never waits on the network. Keys are the rows' ids, so a
fill or an event is told once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.notifications import notify
from bots.models import Bot, BotEvent, Order, Trade

EXIT_REASONS = frozenset({"stop_loss", "take_profit", "liquidation"})
EVENT_KINDS = {
    "stopped": "bot_stopped",
    "replay_ended": "bot_stopped",
    "exchange_unavailable": "exchange_unreachable",
    "exchange_recovered": "exchange_recovered",
    "daily_loss_limit": "daily_loss_limit",
}
NICE_REASONS = {
    "stop_loss": "Stop-loss",
    "take_profit": "Take-profit",
    "liquidation": "Liquidation",
}


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def trade_kind(order: Order, trade: Trade) -> str:
    """``exit`` for a stop-loss, take-profit or liquidation; ``trade_closed`` for a fill that
    realised a result (a spot sell, a perp's reducing fill); else ``order_filled``."""
    if order.reason in EXIT_REASONS:
        return "exit"
    closing = trade.pnl != 0 or (":" not in trade.symbol and trade.side == Order.Side.SELL)
    return "trade_closed" if closing else "order_filled"


def trades_filled(bot: Bot, order: Order, trades: list[Trade]) -> None:
    for trade in trades:
        facts = {
            "bot": bot.name, "side": trade.side, "symbol": trade.symbol,
            "qty": _plain(trade.qty), "price": _plain(trade.price), "pnl": _signed(trade.pnl),
            "reason": NICE_REASONS.get(order.reason, order.reason),
        }  # fmt: skip
        notify(
            user=bot.user_id, kind=trade_kind(order, trade), key=f"trade-{trade.pk}",
            facts=facts, data={"bot_id": bot.pk, "trade_id": trade.pk},
        )  # fmt: skip


def _signed(value: Decimal) -> str:
    return ("+" if value > 0 else "") + _plain(value.quantize(Decimal("0.01")))


def event_recorded(bot: Bot, event: BotEvent) -> None:
    kind = EVENT_KINDS.get(event.kind)
    if kind is None and event.level == BotEvent.Level.ERROR:
        kind = "bot_error"
    if kind is None:
        return
    notify(
        user=bot.user_id, kind=kind, key=f"bot-event-{event.pk}",
        facts={"bot": bot.name, "message": event.message},
        data={"bot_id": bot.pk, "event_id": event.pk},
    )  # fmt: skip


def daily_summary_lines(user_id: int, start: datetime, end: datetime) -> list[str]:
    """The user's bots in the daily summary: fills and realised PnL of the day, by bot."""
    rows = (
        Trade.objects.filter(bot__user_id=user_id, time__gte=start, time__lt=end)
        .values("bot__name")
        .annotate(fills=Count("id"), pnl=Sum("pnl"))
        .order_by("bot__name")
    )
    lines = [f"{r['bot__name']}: {r['fills']} fills, PnL {_signed(r['pnl'])}" for r in rows]
    running = Bot.objects.filter(user_id=user_id, status=Bot.Status.RUNNING).count()
    return [*lines, f"{running} bot(s) running."]


def exchange_error_spike() -> str | None:
    """Many bots' exchange errors in the last 10 minutes (a staff alert)."""
    since = timezone.now() - timedelta(minutes=10)
    errors = (
        BotEvent.objects.filter(time__gte=since, kind__startswith="exchange_")
        .exclude(kind="exchange_recovered")
        .count()
    )
    if errors < settings.NOTIFY_EXCHANGE_ERRORS:
        return None
    return f"{errors} exchange errors in the last 10 minutes."
