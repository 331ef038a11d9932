"""Reads of performance over time: equity curves, profit by day, week and month, and "today".

Every read is scoped to the trader (a bot is found through ``bots.selectors.bot_get`` first).
Money is in the quote currency (USDT).

**Which clock.** A live bot trades on the wall clock; a replay bot on its replay's market time:
its fills (``Trade.time``) and its equity rows (``BotEquity.time``) carry the replayed candle's
time, and its "today" is the trader's day (in the trader's time zone) at the close of the last
candle it acted on. So "realised today" counts a live bot's fills since the trader's midnight
and a replay bot's since the midnight of its own replayed day. Account equity
(``AccountEquity``) is sampled on the wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from accounts.models import User
from bots.models import Bot, BotEquity, Position, Trade
from markets.models import AccountEquity, Candle, ExchangeAccount, PaperBalance
from markets.timeframes import timeframe_ms

QUOTE = "USDT"
ZERO = Decimal(0)
PERIODS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
WINDOWS = {"day": timedelta(days=1), "week": timedelta(days=7), "month": timedelta(days=31)}
SPARKLINE_POINTS = 60


def trader_zone(user: User) -> tzinfo:
    """The trader's time zone (UTC for a name no longer known)."""
    try:
        return ZoneInfo(user.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- the bot's clock and "today" -----------------------------------------------------------------


def bot_now(bot: Bot) -> datetime:
    """The bot's "now": a replay's market time (the close of the last candle it acted on, or
    its start before the first), the wall clock for a live bot."""
    if bot.data_source != Bot.DataSource.REPLAY:
        return timezone.now()
    if bot.last_candle_ms is not None:
        ms = bot.last_candle_ms + timeframe_ms(bot.timeframe)
    else:
        ms = bot.replay_start_ms or 0
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def day_start(moment: datetime, zone: tzinfo) -> datetime:
    """The start of ``moment``'s day in ``zone``."""
    local = moment.astimezone(zone)
    return datetime.combine(local.date(), time.min, tzinfo=zone)


def realised_today(*, user: User, zone: tzinfo) -> Decimal:
    """The fills' realised PnL since the start of "today" in ``zone``, each bot's today on its
    own clock (see the module docstring)."""
    midnight = day_start(timezone.now(), zone)
    today = Q(bot__data_source=Bot.DataSource.LIVE, time__gte=midnight)
    replays = Bot.objects.filter(user=user, data_source=Bot.DataSource.REPLAY)
    for bot in replays.only("pk", "data_source", "last_candle_ms", "replay_start_ms", "timeframe"):
        today |= Q(bot_id=bot.pk, time__gte=day_start(bot_now(bot), zone))
    total = Trade.objects.filter(today, bot__user=user).aggregate(pnl=Sum("pnl"))["pnl"]
    return total or ZERO


# --- account equity ------------------------------------------------------------------------------


def paper_account_equity(account: ExchangeAccount) -> Decimal:
    """A paper account's balances valued in the quote currency at the last price known for each
    currency (a bot's mark on the account, else the newest stored candle, else 0)."""
    total = ZERO
    for balance in PaperBalance.objects.filter(account=account):
        amount = balance.free + balance.used
        if amount:
            total += amount * _price(account, balance.currency)
    return total


def _price(account: ExchangeAccount, currency: str) -> Decimal:
    if currency == QUOTE:
        return Decimal(1)
    symbol = f"{currency}/{QUOTE}"
    marked = (
        Position.objects.filter(bot__exchange_account=account, symbol=symbol)
        .exclude(mark_price=None)
        .order_by("-updated_at")
        .values_list("mark_price", flat=True)
        .first()
    )
    if marked is not None:
        return marked
    close = (
        Candle.objects.filter(exchange=account.exchange, symbol=symbol)
        .order_by("-open_time")
        .values_list("close", flat=True)
        .first()
    )
    return close if close is not None else ZERO


def total_equity_series(*, user: User, limit: int) -> list[tuple[int, Decimal]]:
    """The trader's paper accounts' equity summed per sample time, oldest first: the newest
    ``limit`` samples."""
    rows = (
        AccountEquity.objects.filter(account__user=user)
        .values("time")
        .annotate(total=Sum("equity"))
        .order_by("-time")[:limit]
    )
    return [(epoch_ms(row["time"]), row["total"]) for row in reversed(rows)]


# --- profit by period ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodRow:
    start: datetime  # the bucket's start, in the trader's time zone
    profit: Decimal  # realised, net of fees
    trades: int  # fills that realised a profit or a loss (a closing fill)
    wins: int

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None


def performance_periods(*, user: User, period: str, zone: tzinfo, limit: int) -> list[PeriodRow]:
    """Realised profit, closed trades and wins per ``period`` (day, week from Monday, month) in
    ``zone``, newest first: the ``limit`` newest buckets with a closing fill."""
    bucket = PERIODS[period]("time", tzinfo=zone)
    rows = (
        Trade.objects.filter(bot__user=user)
        .exclude(pnl=0)
        .annotate(start=bucket)
        .values("start")
        .annotate(profit=Sum("pnl"), trades=Count("pk"), wins=Count("pk", filter=Q(pnl__gt=0)))
        .order_by("-start")[:limit]
    )
    return [
        PeriodRow(row["start"].astimezone(zone), row["profit"], row["trades"], row["wins"])
        for row in rows
    ]


# --- a bot's curve -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EquityPoint:
    time: datetime
    equity: Decimal
    realised: Decimal
    unrealised: Decimal
    drawdown: Decimal  # below the highest equity so far, in quote (>= 0)


def bot_equity_series(
    *, bot: Bot, limit: int, window: timedelta | None = None
) -> list[EquityPoint]:
    """The bot's newest ``limit`` equity rows, oldest first, one per time (a replay run again
    over the same candles keeps the newest row), with the drawdown from the running peak;
    with ``window``, only the rows that span before its newest (on the bot's own clock)."""
    rows_of_bot = BotEquity.objects.filter(bot=bot)
    if window is not None:
        newest = rows_of_bot.aggregate(newest=Max("time"))["newest"]
        if newest is not None:
            rows_of_bot = rows_of_bot.filter(time__gte=newest - window)
    rows = list(
        rows_of_bot.order_by("-time", "-id").values_list("time", "realised", "unrealised")[
            : limit * 2
        ]
    )
    by_time: dict[datetime, tuple[Decimal, Decimal]] = {}
    for moment, realised, unrealised in rows:
        by_time.setdefault(moment, (realised, unrealised))
    points: list[EquityPoint] = []
    peak: Decimal | None = None
    for moment in sorted(by_time)[-limit:]:
        realised, unrealised = by_time[moment]
        equity = realised + unrealised
        peak = equity if peak is None else max(peak, equity)
        points.append(EquityPoint(moment, equity, realised, unrealised, peak - equity))
    return points


def bots_sparklines(
    *, user: User, points: int = SPARKLINE_POINTS
) -> dict[int, list[tuple[int, Decimal]]]:
    """Each of the trader's bots' last ``points`` equity values (oldest first), for a sparkline."""
    lines: dict[int, list[tuple[int, Decimal]]] = {}
    for bot in Bot.objects.filter(user=user).only("pk"):
        series = bot_equity_series(bot=bot, limit=points)
        lines[bot.pk] = [(epoch_ms(p.time), p.equity) for p in series]
    return lines
