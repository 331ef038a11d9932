"""Recording equity over time, and keeping it bounded.

- A bot's curve (``BotEquity``): one row per closed candle it acts on, written by the tick in
  the transaction that records its decision (``bot_equity_row``; the batch's held bots in one
  bulk insert), from the position the tick has just marked: no exchange call, one insert.
- The paper accounts' equity (``AccountEquity``): once a minute (beat), each paper account's
  balances valued at the last known prices (``bots.performance.paper_account_equity``): no
  exchange call either. A live account's balances are on the exchange: not sampled.
- ``equity_compact`` (hourly, beat) thins both with age: every row of the last
  ``RAW_DAYS``, then the last row of each hour up to ``HOURLY_DAYS``, the last of each day
  beyond. A bot's age is counted on its own clock (from its newest row: a replay's rows are in
  market time, years old), an account's on the wall clock. Keeping the last row of a bucket
  (never a new, averaged one) makes it idempotent: a second run finds nothing to delete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db.models import Max, Min
from django.utils import timezone

from bots.models import Bot, BotEquity, Position
from bots.performance import paper_account_equity
from markets.models import AccountEquity, ExchangeAccount
from markets.timeframes import timeframe_ms
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)
RAW_DAYS = 2
HOURLY_DAYS = 90
DELETE_BATCH = 5000


def bot_equity_row(bot: Bot, position: Position, candle_ms: int) -> BotEquity:
    """The (unsaved) equity row of the bot after it acted on the candle opened at ``candle_ms``:
    stamped at the candle's close, valued from its position as the tick marked it."""
    close_ms = candle_ms + timeframe_ms(bot.timeframe)
    return BotEquity(
        bot=bot,
        time=datetime.fromtimestamp(close_ms / 1000, tz=UTC),
        realised=position.pnl,
        unrealised=position.unrealized_pnl,
    )


def accounts_equity_record(*, now: datetime | None = None) -> int:
    """Sample every paper account's equity at ``now`` (floored to the minute); an account that
    already has this minute's row (a task delivered twice) is skipped. Returns rows written."""
    minute = (now or timezone.now()).replace(second=0, microsecond=0)
    done = set(AccountEquity.objects.filter(time=minute).values_list("account_id", flat=True))
    accounts = ExchangeAccount.objects.filter(mode=ExchangeAccount.Mode.PAPER).exclude(pk__in=done)
    rows = [
        AccountEquity(account=account, time=minute, equity=paper_account_equity(account))
        for account in accounts
    ]
    AccountEquity.objects.bulk_create(rows)
    return len(rows)


def equity_compact(*, now: datetime | None = None) -> dict[str, int]:
    """Thin the bots' and the accounts' equity rows by age (see the module docstring); one log
    line with the counts."""
    bots, bot_rows = _compact_owners(BotEquity, "bot", newest_of=None)
    accounts, account_rows = _compact_owners(
        AccountEquity, "account", newest_of=now or timezone.now()
    )
    counts = {"bots": bots, "bot_rows_deleted": bot_rows,
              "accounts": accounts, "account_rows_deleted": account_rows}  # fmt: skip
    logger.info("equity.compacted", extra=context(**counts))
    return counts


def _compact_owners(
    model: type[BotEquity] | type[AccountEquity], owner: str, *, newest_of: datetime | None
) -> tuple[int, int]:
    """Compact each owner's rows; ``newest_of`` is "now" for every owner, or None for each
    owner's own newest row. Returns (owners with rows to thin, rows deleted)."""
    spans = model.objects.values(owner).annotate(oldest=Min("time"), newest=Max("time"))
    owners = deleted = 0
    for span in spans:
        newest = newest_of or span["newest"]
        if span["oldest"] >= newest - timedelta(days=RAW_DAYS):
            continue
        rows = (
            model.objects.filter(**{owner: span[owner]}, time__lt=newest - timedelta(days=RAW_DAYS))
            .order_by("time", "id")
            .values_list("pk", "time")
        )
        doomed = thinned_out(rows, newest=newest)
        owners += 1
        deleted += _delete(model, doomed)
    return owners, deleted


def thinned_out(rows: Iterable[tuple[int, datetime]], *, newest: datetime) -> list[int]:
    """The ids to delete among ``rows`` (oldest first, all older than ``RAW_DAYS`` before
    ``newest``): all but the last of each hour, and beyond ``HOURLY_DAYS`` of each day (UTC)."""
    hourly_since = newest - timedelta(days=HOURLY_DAYS)
    kept: dict[tuple[str, datetime], int] = {}
    doomed: list[int] = []
    for pk, moment in rows:
        if moment >= hourly_since:
            key = ("hour", moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
        else:
            key = ("day", moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0))
        previous = kept.get(key)
        if previous is not None:
            doomed.append(previous)
        kept[key] = pk
    return doomed


def _delete(model: type[BotEquity] | type[AccountEquity], pks: list[int]) -> int:
    deleted = 0
    for start in range(0, len(pks), DELETE_BATCH):
        deleted += model.objects.filter(pk__in=pks[start : start + DELETE_BATCH]).delete()[0]
    return deleted
