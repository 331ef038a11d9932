"""Backtests: create, run (in a worker), cancel, re-run, recover the lost ones.

Life of a backtest: ``queued`` → ``running`` → ``done`` | ``failed`` | ``cancelled``.

- Every state change is a conditional UPDATE on the expected state, so a cancel and a finishing
  worker cannot both win, and a message delivered twice cannot take a backtest out of ``queued``
  twice.
- While it runs, a thread stamps its heartbeat (:mod:`backtests.services.heartbeat`). A backtest
  whose worker was killed goes silent; :func:`backtests_fail_stale` (beat, every minute) fails
  it, so nothing stays ``running`` for ever. Redelivered after a lost worker, a backtest runs
  again from the start, at most ``BACKTEST_MAX_ATTEMPTS`` times.
- A backtest still ``queued`` long after its message was sent gets it sent again
  (:func:`backtests_requeue_lost`): the broker may have lost it.
- Results are written in one transaction together with ``done``: a backtest is either finished
  with all its trades or has none.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from backtests.engine import EXIT_REASONS, BacktestResult
from backtests.events import backtest_status_data
from backtests.models import ACTIVE_STATUSES, Backtest, BacktestSchedule, BacktestTrade, RunStatus
from backtests.runner import run_backtest
from backtests.services import notices
from backtests.services.config import checked_period, one_create_at_a_time, run_spec_check
from backtests.services.heartbeat import Heartbeat
from backtests.services.runs import (
    EXPECTED_ERRORS,
    PROGRESS_EVERY_SECONDS,
    RECOVER_AFTER_SECONDS,
    engine_inputs,
    orphans_resend,
    period_candles,
    publish_status,
    requeue_overdue,
    rerun_fields,
    run_seconds,
    unqueued,
    without_message,
)
from backtests.spec import RunSpec
from strategies.registry import active
from tradingbot.broker import PendingTask
from tradingbot.logconfig import context
from tradingbot.metrics import BACKTEST_DURATION
from tradingbot.tasks import enqueue as enqueue_task

logger = logging.getLogger(__name__)

RUN_TASK = "backtests.tasks.run_backtest_task"
TRADE_BATCH = 2000


class _Stopped(Exception):
    """The backtest left ``running`` while the worker was on it (cancelled, or failed as stale)."""


def backtest_create(
    *,
    user: User,
    spec: RunSpec,
    start: datetime,
    end: datetime,
    schedule: BacktestSchedule | None = None,
    enqueue: bool = True,
) -> Backtest:
    """Check everything, store a ``queued`` backtest and enqueue its run once committed.

    ``enqueue=False`` leaves it queued for the caller to run with :func:`backtest_execute`
    (the demo seed does, before any worker or broker is up).
    """
    checked = run_spec_check(spec=spec)
    candle_count = checked_period(spec=spec, start=start, end=end)
    with one_create_at_a_time(user):
        backtest = Backtest.objects.create(
            user=user,
            start=start,
            end=end,
            candle_count=candle_count,
            schedule=schedule,
            task_id=str(uuid.uuid4()),
            enqueued_at=timezone.now(),
            **checked.fields,
        )
        # "queued" is published before the task is sent (on-commit callbacks run in order):
        # the other way round, a fast worker's "running" could reach clients before it, and a
        # failed send's "failed" would be followed by a stale "queued".
        _publish(backtest)
        if enqueue:
            _enqueue(backtest)
    logger.info(
        "backtest.created",
        extra=context(
            backtest_id=backtest.pk,
            user_id=user.pk,
            strategy=spec.strategy,
            market=backtest.market_label,
            candles=candle_count,
            schedule_id=schedule.pk if schedule else None,
        ),
    )
    return backtest


def backtest_rerun(*, backtest: Backtest) -> Backtest:
    """A new backtest with the same configuration and period (checked again, as if new)."""
    return backtest_create(**rerun_fields(backtest), schedule=backtest.schedule)


def _enqueue(backtest: Backtest) -> None:
    def send() -> None:
        try:
            _send(backtest)
        except Exception as exc:
            unqueued(Backtest, backtest.pk, cause=exc, event=_publish)

    transaction.on_commit(send)


def _send(backtest: Backtest) -> None:
    enqueue_task(RUN_TASK, backtest.pk, queue=settings.BACKTESTS_QUEUE, task_id=backtest.task_id)


def backtest_cancel(*, backtest: Backtest) -> Backtest:
    """Cancel a queued or running backtest; a finished one is left as it is (and returned)."""
    cancelled = Backtest.objects.filter(pk=backtest.pk, status__in=ACTIVE_STATUSES).update(
        status=RunStatus.CANCELLED, finished_at=timezone.now()
    )
    backtest.refresh_from_db()
    if cancelled:
        _revoke(backtest.task_id)
        _publish(backtest)
        logger.info(
            "backtest.cancelled", extra=context(backtest_id=backtest.pk, user_id=backtest.user_id)
        )
    return backtest


def _revoke(task_id: str) -> None:
    """Best effort: a queued message would only be skipped by the worker anyway; revoking saves
    it the trip. A broker outage must not fail the cancel, which is already stored."""
    from tradingbot.celery import app

    try:
        app.control.revoke(task_id)
    except Exception as exc:
        logger.warning("backtest.revoke_failed", extra=context(error=type(exc).__name__))


def backtest_delete(*, backtest: Backtest) -> None:
    """Delete a backtest and its trades; an active one is cancelled first."""
    if backtest.is_active:
        backtest_cancel(backtest=backtest)
    backtest_id = backtest.pk
    backtest.delete()
    logger.info("backtest.deleted", extra=context(backtest_id=backtest_id))


# --- Running (in a worker) ---------------------------------------------------------------------


def backtest_execute(*, backtest_id: int, worker: str = "") -> str:
    """Run a backtest (the body of ``run_backtest_task``); returns the status it ended in.

    Never raises for a failing backtest: the failure is stored on it. A lost worker (a killed
    process) is the only way out without a final status, and the stale check covers that.
    """
    backtest = _claim(backtest_id, worker)
    if backtest is None:
        return _current_status(backtest_id)
    if backtest.attempts > settings.BACKTEST_MAX_ATTEMPTS:
        return _fail(
            backtest,
            f"Its worker was lost {backtest.attempts - 1} times while running it; giving up.",
        )
    started = time.monotonic()
    progress = _Progress(backtest)
    beating = Backtest.objects.filter(pk=backtest_id, status=RunStatus.RUNNING)
    try:
        with Heartbeat(beating, label=f"backtest-{backtest_id}"):
            result = _simulate(backtest, progress)
            _finish(backtest, result)
    except _Stopped:
        logger.info("backtest.stopped", extra=context(backtest_id=backtest_id))
        return _current_status(backtest_id)
    except SoftTimeLimitExceeded:
        return _fail(backtest, "It took longer than the time limit for a backtest.")
    except EXPECTED_ERRORS as exc:
        return _fail(backtest, str(exc))
    except Exception:
        logger.exception("backtest.crashed", extra=context(backtest_id=backtest_id))
        return _fail(backtest, "An unexpected error stopped this backtest. It has been logged.")
    BACKTEST_DURATION.observe(run_seconds(backtest), status=RunStatus.DONE)
    logger.info(
        "backtest.done",
        extra=context(
            backtest_id=backtest_id,
            candles=backtest.candle_count,
            trades=backtest.trade_count,
            final_equity=(backtest.metrics or {}).get("final_equity"),
            seconds=round(time.monotonic() - started, 3),
        ),
    )
    return RunStatus.DONE


def _claim(backtest_id: int, worker: str) -> Backtest | None:
    """Move the backtest to ``running`` (from ``queued``, or from ``running`` when a lost worker's
    message is delivered again); None when it is no longer to be run."""
    now = timezone.now()
    claimed = Backtest.objects.filter(pk=backtest_id, status__in=ACTIVE_STATUSES).update(
        status=RunStatus.RUNNING,
        attempts=F("attempts") + 1,
        started_at=now,
        heartbeat_at=now,
        progress=0.0,
        worker=worker,
    )
    if not claimed:
        logger.info("backtest.skipped", extra=context(backtest_id=backtest_id))
        return None
    backtest = Backtest.objects.select_related("user").get(pk=backtest_id)
    _publish(backtest)
    return backtest


def _current_status(backtest_id: int) -> str:
    status = Backtest.objects.filter(pk=backtest_id).values_list("status", flat=True).first()
    return status or "deleted"


def _simulate(backtest: Backtest, progress: _Progress) -> BacktestResult:
    candles = period_candles(backtest)
    backtest.candle_count = len(candles)
    progress.report(0.4)
    strategy = active().create(backtest.strategy_id, backtest.params)
    result = run_backtest(candles, strategy, **engine_inputs(backtest, candles))
    progress.report(0.7)
    return result


def _finish(backtest: Backtest, result: BacktestResult) -> None:
    """Store the trades and the results and mark the backtest done, all in one transaction."""
    equity = result.to_dict(max_equity_points=settings.BACKTEST_EQUITY_POINTS)["equity"]
    backtest.metrics = result.metrics
    backtest.equity = [list(pair) for pair in zip(equity["time"], equity["value"], strict=True)]
    backtest.trade_count = len(result.trades)
    with transaction.atomic():
        finished = Backtest.objects.filter(pk=backtest.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.DONE,
            progress=1.0,
            metrics=backtest.metrics,
            equity=backtest.equity,
            candle_count=backtest.candle_count,
            trade_count=backtest.trade_count,
            error="",
            finished_at=timezone.now(),
        )
        if not finished:
            raise _Stopped
        BacktestTrade.objects.filter(backtest=backtest).delete()  # an earlier, lost attempt's
        for batch in _trade_rows(backtest, result):
            BacktestTrade.objects.bulk_create(batch)
        backtest.status = RunStatus.DONE
        backtest.progress = 1.0
        _publish(backtest)
        notices.backtest_finished(backtest)


def _trade_rows(backtest: Backtest, result: BacktestResult) -> Any:
    trades = result.trades
    columns = {name: trades[name].tolist() for name in trades.columns}
    rows = zip(
        columns["side"],
        columns["entry_time"],
        columns["exit_time"],
        columns["qty"],
        columns["entry_price"],
        columns["exit_price"],
        columns["fee"],
        columns["pnl"],
        columns["return"],
        columns["exit_reason"],
        columns["leverage"],
        columns["funding"],
        strict=True,
    )
    batch: list[BacktestTrade] = []
    for seq, row in enumerate(rows):
        side, entry_time, exit_time, qty, entry_price, exit_price, fee, pnl, rate, reason = row[:10]
        leverage, funding = row[10:]
        assert reason in EXIT_REASONS
        batch.append(
            BacktestTrade(
                backtest=backtest,
                seq=seq,
                side=BacktestTrade.Side.LONG if side > 0 else BacktestTrade.Side.SHORT,
                entry_time=entry_time,
                exit_time=exit_time,
                qty=_decimal(qty),
                entry_price=_decimal(entry_price),
                exit_price=_decimal(exit_price),
                fee=_decimal(fee),
                pnl=_decimal(pnl),
                return_rate=rate,
                exit_reason=reason,
                leverage=round(leverage),
                funding=_decimal(funding),
            )
        )
        if len(batch) == TRADE_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _decimal(value: float) -> Decimal:
    """A float as a Decimal of at most 12 decimal places (the column's scale)."""
    return round(Decimal(repr(value)), 12)


def _fail(backtest: Backtest, error: str, *, silent_before: datetime | None = None) -> str:
    """Fail a running backtest. With ``silent_before``, only if it has not reported since."""
    running = Backtest.objects.filter(pk=backtest.pk, status=RunStatus.RUNNING)
    if silent_before is not None:
        running = running.filter(heartbeat_at__lt=silent_before)
    failed = running.update(status=RunStatus.FAILED, error=error, finished_at=timezone.now())
    if not failed:
        return _current_status(backtest.pk)
    backtest.status, backtest.error = RunStatus.FAILED, error
    BACKTEST_DURATION.observe(run_seconds(backtest), status=RunStatus.FAILED)
    _publish(backtest)
    notices.backtest_finished(backtest)
    logger.warning(
        "backtest.failed", extra=context(backtest_id=backtest.pk, user_id=backtest.user_id)
    )
    return RunStatus.FAILED


class _Progress:
    """Progress reports between steps: the row (as a heartbeat) and, at most twice a second, an
    event. Raises :class:`_Stopped` when the backtest is no longer running."""

    def __init__(self, backtest: Backtest) -> None:
        self.backtest = backtest
        self.last_event = 0.0

    def report(self, fraction: float) -> None:
        updated = Backtest.objects.filter(pk=self.backtest.pk, status=RunStatus.RUNNING).update(
            progress=fraction, heartbeat_at=timezone.now()
        )
        if not updated:
            raise _Stopped
        self.backtest.progress = fraction
        now = time.monotonic()
        if now - self.last_event >= PROGRESS_EVERY_SECONDS:
            self.last_event = now
            _publish(self.backtest)


def _publish(backtest: Backtest) -> None:
    publish_status("backtest", backtest, backtest_status_data(backtest))


# --- Housekeeping ------------------------------------------------------------------------------


def backtests_requeue_lost(*, now: datetime | None = None) -> int:
    """Send again the task of backtests queued for ``BACKTEST_REQUEUE_SECONDS`` or more.

    Their message may be gone: a broker restarted without persistence (the embedded Redis keeps
    nothing) or a worker lost before it acknowledged. A second message is harmless: only one
    claim can move a backtest out of ``queued``, and the other delivery is skipped.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_REQUEUE_SECONDS)
    overdue = Backtest.objects.filter(status=RunStatus.QUEUED, enqueued_at__lt=cutoff)
    return requeue_overdue(overdue, cutoff=cutoff, now=now, send=_send, name="backtests")


def backtests_recover(
    *,
    worker: str,
    booted_at: datetime,
    held: list[PendingTask] | None,
    now: datetime | None = None,
) -> int:
    """At the start of the worker node ``worker`` (its process booted at ``booted_at``): send
    again, at once, the backtests whose message is gone. Those its previous process was running
    when it died, and those queued for ``RECOVER_AFTER_SECONDS`` whose message the broker does
    not hold (``held``, as :func:`tradingbot.broker.pending_tasks` reads it; ``None``: cannot
    tell, the scheduled requeue covers them). Returns how many were sent."""
    now = now or timezone.now()
    resent = orphans_resend(
        Backtest.objects.all(),
        worker=worker,
        booted_at=booted_at,
        now=now,
        send=_resend,
        name="backtests",
    )
    if held is None:
        return resent
    cutoff = now - timedelta(seconds=RECOVER_AFTER_SECONDS)
    queued = Backtest.objects.filter(status=RunStatus.QUEUED, enqueued_at__lt=cutoff)
    lost = without_message(queued, held, task=RUN_TASK, now=now)
    return resent + requeue_overdue(lost, cutoff=cutoff, now=now, send=_send, name="backtests")


def _resend(backtest: Backtest) -> None:
    _publish(backtest)
    _send(backtest)


def backtests_fail_stale(*, now: datetime | None = None) -> int:
    """Fail running backtests whose worker has not reported for ``BACKTEST_STALE_SECONDS``."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_STALE_SECONDS)
    error = "Its worker stopped responding (lost or killed) while running it."
    failed = 0
    for backtest in Backtest.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff):
        if _fail(backtest, error, silent_before=cutoff) == RunStatus.FAILED:
            failed += 1
    if failed:
        logger.warning("backtests.stale_failed", extra=context(count=failed))
    return failed
