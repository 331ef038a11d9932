"""Reads for the trader's dashboard: totals across accounts, the bots, recent trades and events.

Everything is scoped to the trader. Money is in the quote currency (USDT): a paper account's
equity is its balances valued at the last price known for each currency (a bot's mark price, or
the newest stored candle); a live account's balances live on the exchange and are not read here,
so its equity is unknown (None) while its bots' PnL still counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import User
from bots.models import Bot, BotEvent, Position, Trade
from markets.models import Candle, ExchangeAccount, PaperBalance

QUOTE = "USDT"
ZERO = Decimal(0)
RECENT = 20


@dataclass(frozen=True)
class AccountEquity:
    account: ExchangeAccount
    equity: Decimal | None  # None: a live account, whose balances are on the exchange


@dataclass(frozen=True)
class Totals:
    equity: Decimal  # the paper accounts'
    live_accounts: int  # how many accounts' equity is not included
    pnl_all_time: Decimal  # realised + unrealised, every bot
    realised_today: Decimal  # fills since midnight in the trader's time zone
    unrealised: Decimal
    accounts: list[AccountEquity]


def dashboard_totals(*, user: User) -> Totals:
    accounts = [
        AccountEquity(
            account, _paper_equity(account) if account.mode == ExchangeAccount.Mode.PAPER else None
        )
        for account in ExchangeAccount.objects.filter(user=user).order_by("label")
    ]
    books = Position.objects.filter(bot__user=user).aggregate(
        pnl=Sum("pnl"), unrealised=Sum("unrealized_pnl")
    )
    realised, unrealised = books["pnl"] or ZERO, books["unrealised"] or ZERO
    today = Trade.objects.filter(bot__user=user, time__gte=_local_midnight()).aggregate(
        pnl=Sum("pnl")
    )
    return Totals(
        equity=sum((a.equity for a in accounts if a.equity is not None), ZERO),
        live_accounts=sum(1 for a in accounts if a.equity is None),
        pnl_all_time=realised + unrealised,
        realised_today=today["pnl"] or ZERO,
        unrealised=unrealised,
        accounts=accounts,
    )


def _local_midnight() -> datetime:
    """Today's start in the active (the trader's) time zone."""
    now = timezone.localtime()
    return datetime.combine(now.date(), time.min, tzinfo=now.tzinfo)


def _paper_equity(account: ExchangeAccount) -> Decimal:
    total = ZERO
    for balance in PaperBalance.objects.filter(account=account):
        amount = balance.free + balance.used
        if amount:
            total += amount * _price(account, balance.currency)
    return total


def _price(account: ExchangeAccount, currency: str) -> Decimal:
    """The last known price of ``currency`` in the quote currency (0 when none is known)."""
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


def dashboard_bots(*, user: User) -> list[tuple[Bot, Position | None]]:
    """Each bot with its position on its current market."""
    bots = list(Bot.objects.filter(user=user).select_related("exchange_account").order_by("name"))
    positions = {
        (position.bot_id, position.symbol): position
        for position in Position.objects.filter(bot__in=bots)
    }
    return [(bot, positions.get((bot.pk, bot.symbol))) for bot in bots]


def recent_trades(*, user: User, limit: int = RECENT) -> QuerySet[Trade]:
    return (
        Trade.objects.filter(bot__user=user).select_related("bot").order_by("-time", "-id")[:limit]
    )


def recent_events(*, user: User, limit: int = RECENT) -> QuerySet[BotEvent]:
    return (
        BotEvent.objects.filter(bot__user=user)
        .select_related("bot")
        .order_by("-time", "-id")[:limit]
    )
