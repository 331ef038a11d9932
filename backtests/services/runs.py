"""What backtests and sweeps share while they are queued and run: the errors a run may show as
they are, how often progress is published, a status event, what a re-run repeats, the candles
of a run, deleting one, a run the broker refused, and the messages sent again when the broker
may have lost them."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
from django.db.models import Model, QuerySet
from django.utils import timezone

from backtests.models import Backtest, RunStatus, Sweep
from markets import selectors as market_selectors
from strategies.registry import UnknownStrategyError
from tradingbot.events import object_event, object_groups, publish_after_commit
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

PROGRESS_EVERY_SECONDS = 0.5
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


def run_seconds(run: Backtest | Sweep) -> float:
    """Seconds from the run's (latest) start to now; NaN when it never started."""
    if run.started_at is None:
        return math.nan
    return (timezone.now() - run.started_at).total_seconds()


def rerun_fields(run: Backtest | Sweep) -> dict[str, Any]:
    """What a create service takes to run ``run`` again: its owner, configuration and period."""
    return {"user": run.user, "spec": run.run_spec(), "start": run.start, "end": run.end}


def period_candles(run: Backtest | Sweep) -> pd.DataFrame:
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
