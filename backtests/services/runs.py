"""What backtests and sweeps share while they are queued and run: the errors a run may show as
they are, how often progress is published, a status event, what a re-run repeats, the candles
of a run, deleting one, a run the broker refused, and the messages sent again when the broker
may have lost them (on a schedule, and at once when a worker starts)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from django.db.models import Model, QuerySet
from django.utils import timezone

from backtests.models import PeriodRun, RunStatus
from markets import selectors as market_selectors
from markets.timeframes import timeframe_ms
from strategies.registry import UnknownStrategyError
from tradingbot.broker import PendingTask
from tradingbot.events import object_event, object_groups, publish_after_commit
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5
# At a worker's start, a queued run whose message the broker does not hold is sent again once it
# has been queued this long: its message may still be on its way (sent on commit, or between a
# queue and a worker's unacknowledged set).
RECOVER_AFTER_SECONDS = 2
# Failures whose message is safe and useful to show the user as it is: the engine's and the
# strategies' own errors (StrategyParamError, StrategyInputError, StrategyOutputError are
# ValueErrors) and a strategy that has left the registry.
EXPECTED_ERRORS = (ValueError, UnknownStrategyError)


def publish_status(kind: str, run: Any, data: Any) -> None:
    """``<kind>.status`` with ``data`` to the run's groups, once the transaction commits."""
    publish_after_commit(
        object_groups(kind, run.pk, run.user_id),
        object_event(kind, "status", object_id=run.pk, owner_id=run.user_id, data=data),
    )


def run_seconds(run: PeriodRun) -> float:
    """Seconds from the run's (latest) start to now; NaN when it never started."""
    if run.started_at is None:
        return math.nan
    return (timezone.now() - run.started_at).total_seconds()


def rerun_fields(run: Any) -> dict[str, Any]:
    """What a create service takes to run ``run`` (a PeriodRun) again: its owner, configuration
    and period."""
    return {"user": run.user, "spec": run.run_spec(), "start": run.start, "end": run.end}


def period_candles(run: PeriodRun) -> pd.DataFrame:
    """The stored candles of the run's market over its period, as the engine takes them."""
    candles = market_selectors.candles_frame(
        exchange=run.exchange,
        symbol=run.symbol,
        timeframe=run.timeframe,
        start_ms=run.start_ms,
        end_ms=run.end_ms,
    )
    if candles.empty:
        raise ValueError("The candles of this period are no longer stored.")
    return candles


def engine_inputs(run: PeriodRun, candles: pd.DataFrame) -> dict[str, Any]:
    """What the engine takes besides the candles: the account settings and, on a perp market,
    its liquidation rule, the funding of the period and the mark-price candles (``run_backtest``'s
    keyword arguments)."""
    market = market_selectors.perp_market(exchange=run.exchange, symbol=run.symbol)
    if market is None:
        return {"settings": run.engine_settings()}
    key = {"exchange": run.exchange, "symbol": run.symbol, "timeframe": run.timeframe}
    # The funding due at the open of the candle after the last still counts (entry < t <= exit).
    last_open = int(candles["open_time"].iloc[-1]) if len(candles) else run.end_ms
    until_ms = last_open + timeframe_ms(run.timeframe)
    return {
        "settings": run.engine_settings(
            perp=True,
            maintenance_margin_rate=float(
                market.tier(opening_notional(run)).maintenance_margin_rate
            ),
        ),
        "funding": market_selectors.funding_frame(**key, start_ms=run.start_ms, end_ms=until_ms),
        "mark": market_selectors.mark_candles_frame(
            **key, start_ms=run.start_ms, end_ms=run.end_ms
        ),
    }


def opening_notional(run: PeriodRun) -> Decimal:
    """The notional of the first position: the engine takes the maintenance-margin rate of its
    tier for every trade (a simplification: the account grows or shrinks after it)."""
    return run.initial_cash * run.position_size * run.leverage


def unqueued(model: type[Model], pk: int, *, cause: Exception, event: Any) -> None:
    """The broker refused a task for a committed run: fail the run rather than leave it queued
    for ever (the user can re-run it once the queue is back)."""
    logger.error("tasks.enqueue_failed", exc_info=cause, extra=context(model=model.__name__, id=pk))
    failed = model._default_manager.filter(pk=pk, status=RunStatus.QUEUED).update(
        status=RunStatus.FAILED,
        error="The task queue could not be reached. Try again in a moment.",
        finished_at=timezone.now(),
    )
    if failed:
        event(model._default_manager.get(pk=pk))


def requeue_overdue(
    rows: QuerySet[Any], *, cutoff: datetime, now: datetime, send: Callable[[Any], Any], name: str
) -> int:
    """Send again the message of each of ``rows`` still queued since before ``cutoff``.

    Each row's ``enqueued_at`` is stamped first by a conditional update, so two housekeepers
    never both send one. The first broker error stops the round: the next one tries again.
    Returns how many were sent; ``name`` prefixes the log events (``backtests.requeued``).
    """
    resent = 0
    for row in rows:
        stamped = rows.model._default_manager.filter(
            pk=row.pk, status=RunStatus.QUEUED, enqueued_at__lt=cutoff
        ).update(enqueued_at=now)
        if not stamped:
            continue
        try:
            send(row)
        except Exception as exc:
            error = type(exc).__name__
            logger.warning("%s.requeue_failed", name, extra=context(id=row.pk, error=error))
            break
        resent += 1
    if resent:
        logger.warning("%s.requeued", name, extra=context(count=resent))
    return resent


def orphans_resend(
    rows: QuerySet[Any],
    *,
    worker: str,
    booted_at: datetime,
    now: datetime,
    send: Callable[[Any], Any],
    name: str,
) -> int:
    """Send again the runs of ``rows`` that the node ``worker`` was running when its previous
    process died: still ``running`` on it, started before this process booted.

    Each goes back to ``queued`` by a conditional update first, so it is sent once. The dead
    process's own message comes back only after the visibility timeout, longer than a run may
    take, so it finds the run finished and is skipped.
    """
    resent = 0
    lost = {"status": RunStatus.RUNNING, "worker": worker, "started_at__lt": booted_at}
    for row in rows.filter(**lost):
        moved = rows.model._default_manager.filter(pk=row.pk, **lost).update(
            status=RunStatus.QUEUED, enqueued_at=now
        )
        if not moved:
            continue
        row.status, row.enqueued_at = RunStatus.QUEUED, now
        send(row)
        resent += 1
    if resent:
        logger.warning("%s.orphans_resent", name, extra=context(count=resent, worker=worker))
    return resent


def without_message(
    rows: QuerySet[Any],
    held: list[PendingTask],
    *,
    task: str | tuple[str, ...],
    now: datetime,
    still_working: Callable[[list[int]], bool] | None = None,
) -> QuerySet[Any]:
    """``rows`` but those whose task ``task`` (taking the row's id, or a list of ids, first) the
    broker holds: in its queue, or delivered within ``RECOVER_AFTER_SECONDS``. A message
    delivered longer ago whose run is still queued was taken by a worker that died before
    starting it; it comes back only after the visibility timeout, by when the run sent again has
    finished. ``still_working`` (a message's ids → bool) may tell otherwise: a task of several
    runs delivered long ago is still working while it has not reached them all."""
    names = (task,) if isinstance(task, str) else task
    recent = now.timestamp() - RECOVER_AFTER_SECONDS
    ids: set[int] = set()
    for message in held:
        if message.name not in names or not message.args:
            continue
        first = message.args[0]
        message_ids = list(first) if isinstance(first, list | tuple) else [first]
        if (
            message.delivered_at is None
            or message.delivered_at >= recent
            or (still_working is not None and still_working(message_ids))
        ):
            ids.update(message_ids)
    return rows.exclude(pk__in=ids)
