"""Reads for the trader's dashboard: totals across accounts, the bots, recent trades and events.

Everything is scoped to the trader. Money is in the quote currency (USDT): a paper account's
equity is its balances valued at the last price known for each currency (a bot's mark price, or
the newest stored candle); a live account's balances live on the exchange and are not read here,
so its equity is unknown (None) while its bots' PnL still counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from accounts.models import User
from bots.models import Bot, BotEvent, Position, Trade
from bots.performance import paper_account_equity, realised_today
from markets.models import ExchangeAccount

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
    realised_today: Decimal  # fills since the trader's midnight (a replay's: on its clock)
    unrealised: Decimal
    accounts: list[AccountEquity]


def dashboard_totals(*, user: User) -> Totals:
    accounts = [
        AccountEquity(
            account,
            paper_account_equity(account) if account.mode == ExchangeAccount.Mode.PAPER else None,
        )
        for account in ExchangeAccount.objects.filter(user=user).order_by("label")
    ]
    books = Position.objects.filter(bot__user=user).aggregate(
        pnl=Sum("pnl"), unrealised=Sum("unrealized_pnl")
    )
    realised, unrealised = books["pnl"] or ZERO, books["unrealised"] or ZERO
    return Totals(
        equity=sum((a.equity for a in accounts if a.equity is not None), ZERO),
        live_accounts=sum(1 for a in accounts if a.equity is None),
        pnl_all_time=realised + unrealised,
        # The trader's day, in their time zone; a replay bot's on its own clock.
        realised_today=realised_today(user=user, zone=timezone.get_current_timezone()),
        unrealised=unrealised,
        accounts=accounts,
    )


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
