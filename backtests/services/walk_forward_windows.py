"""A walk-forward's windows in a worker: the out-of-sample run of each window, the stitched
result once every window is done, and the housekeeping of lost messages and workers.

A window's task (``run_walk_forward_window_task``) is sent when its optimisation is over
(``walk_forward_hooks``). If the optimisation is done, the task claims the window (``queued`` →
``running``, a conditional update: one task runs it), runs the best parameters on the
out-of-sample period (their strategy seeing the in-sample candles as history:
:func:`backtests.walk_forward.out_of_sample_run`) and records it. If the optimisation failed
(no feasible trial), was cancelled or deleted, the window fails, and with it the walk-forward:
its out-of-sample curve would have a hole, so the other windows are cancelled (their
optimisations too) rather than run for a result that cannot be stitched. The windows already
done keep their results.

The task that records the last window closes the walk-forward (:func:`walk_forward_finish`): it
runs every window's out-of-sample backtest again (they are deterministic; the full curves are
not stored per window), stitches them, and stores the stitched metrics, the thinned curve and
the overfitting ratio. Any number of tasks may call it: the row is locked and checked active
before anything is written.
"""

from __future__ import annotations

import copy
import logging
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from backtests.engine import BacktestResult
from backtests.models import (
    ACTIVE_STATUSES,
    Optimization,
    RunStatus,
    WalkForward,
    WalkForwardWindow,
    epoch_ms,
)
from backtests.services import candle_cache, notices
from backtests.services.heartbeat import Heartbeat
from backtests.services.runs import EXPECTED_ERRORS, engine_inputs
from backtests.services.walk_forward_hooks import publish, send_window
from backtests.services.walk_forwards import cancel_window_optimizations
from backtests.walk_forward import (
    Piece,
    Stitched,
    annualised_return,
    days_needed,
    in_sample_annualised,
    out_of_sample_run,
    overfitting_ratio,
    stitch,
    thinned,
)
from strategies.registry import active
from tradingbot.logconfig import context
from tradingbot.tasks import enqueue as enqueue_task

logger = logging.getLogger(__name__)

FINISH_TASK = "backtests.tasks.finish_walk_forward_task"
UNEXPECTED = "An unexpected error stopped it. It has been logged."


def walk_forward_window_run(*, window_id: int, worker: str = "") -> str:
    """Run the window's out-of-sample backtest once its optimisation is done (the body of
    ``run_walk_forward_window_task``); returns what became of the window. Never raises for a
    failing window: the failure is stored."""
    window = (
        WalkForwardWindow.objects.select_related("walk_forward", "optimization")
        .filter(pk=window_id)
        .first()
    )
    if window is None or not window.walk_forward.is_active:
        return "skipped"
    if not window.is_active:  # a second delivery: make sure the walk-forward was closed
        walk_forward_finish(walk_forward_id=window.walk_forward_id)
        return window.status
    optimization = window.optimization
    if optimization is not None and optimization.is_active:
        return "waiting"
    if optimization is None or optimization.status != RunStatus.DONE:
        return _window_failed(window, _why(optimization))
    return _run(window, optimization, worker)


def _why(optimization: Optimization | None) -> str:
    if optimization is None:
        return "its optimisation was deleted."
    if optimization.status == RunStatus.CANCELLED:
        return "its optimisation was cancelled."
    return f"its optimisation failed: {optimization.error}"


def _run(window: WalkForwardWindow, optimization: Optimization, worker: str) -> str:
    attempts = _claim(window, worker)
    if attempts is None:
        return "skipped"
    if attempts > settings.BACKTEST_MAX_ATTEMPTS:
        lost = f"its worker was lost {attempts - 1} times while running it; giving up."
        return _window_failed(window, lost)
    beating = WalkForwardWindow.objects.filter(pk=window.pk, status=RunStatus.RUNNING)
    try:
        with Heartbeat(beating, label=f"walk-forward-window-{window.pk}"):
            params = optimization.best_params or {}
            result, _ = window_result(window.walk_forward, window, params)
    except SoftTimeLimitExceeded:
        return _window_failed(window, "its out-of-sample run took longer than the time limit.")
    except EXPECTED_ERRORS as exc:
        return _window_failed(window, f"its out-of-sample run failed: {exc}")
    except Exception:
        logger.exception("walk_forward.window_crashed", extra=context(window_id=window.pk))
        return _window_failed(window, f"its out-of-sample run failed. {UNEXPECTED}")
    _record(window, optimization, result)
    walk_forward_finish(walk_forward_id=window.walk_forward_id)
    return RunStatus.DONE


def _claim(window: WalkForwardWindow, worker: str) -> int | None:
    """Move the window from ``queued`` to ``running``; its attempts so far, or None when another
    task has it (or it is over)."""
    now = timezone.now()
    claimed = WalkForwardWindow.objects.filter(pk=window.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        attempts=F("attempts") + 1,
        worker=worker,
        started_at=now,
        heartbeat_at=now,
    )
    if not claimed:
        return None
    return WalkForwardWindow.objects.values_list("attempts", flat=True).get(pk=window.pk)


def window_result(
    walk_forward: WalkForward, window: WalkForwardWindow, params: dict[str, object]
) -> tuple[BacktestResult, pd.DataFrame]:
    """The out-of-sample backtest of ``params`` on the window, and its candles."""
    candles = candle_cache.run_candles(_span(walk_forward))
    times = candles["open_time"].to_numpy()
    bounds = [
        epoch_ms(moment)
        for moment in (window.in_sample_start, window.out_of_sample_start, window.out_of_sample_end)
    ]
    low, first, high = (int(i) for i in np.searchsorted(times, bounds))
    history = candles.iloc[low:high].reset_index(drop=True)
    out_of_sample = history.iloc[first - low :].reset_index(drop=True)
    period = _period(walk_forward, window.out_of_sample_start, window.out_of_sample_end)
    strategy = active().create(walk_forward.strategy_id, params)
    inputs = engine_inputs(period, out_of_sample)
    return out_of_sample_run(history, first - low, strategy, **inputs), out_of_sample


def _span(walk_forward: WalkForward) -> WalkForward:
    """The walk-forward as a run over the days its windows cover (the candles read for it)."""
    needed = days_needed(
        in_sample_days=walk_forward.in_sample_days,
        out_of_sample_days=walk_forward.out_of_sample_days,
        count=walk_forward.window_count,
    )
    return _period(walk_forward, walk_forward.start, walk_forward.start + timedelta(days=needed))


def _period(walk_forward: WalkForward, start: datetime, end: datetime) -> WalkForward:
    """An unsaved copy of the walk-forward over ``[start, end)``: a period run for the engine's
    inputs (never saved)."""
    period = copy.copy(walk_forward)
    period.start, period.end = start, end
    return period


def _record(window: WalkForwardWindow, optimization: Optimization, result: BacktestResult) -> None:
    now = timezone.now()
    with transaction.atomic():
        recorded = WalkForwardWindow.objects.filter(pk=window.pk, status=RunStatus.RUNNING).update(
            status=RunStatus.DONE,
            params=optimization.best_params,
            in_sample_value=optimization.best_value,
            in_sample_metrics=optimization.best_metrics,
            out_of_sample_metrics=result.metrics,
            out_of_sample_candles=int(result.times.size),
            error="",
            finished_at=now,
        )
        if not recorded:
            return
        walk_forwards = WalkForward.objects.filter(
            pk=window.walk_forward_id, status__in=ACTIVE_STATUSES
        )
        walk_forwards.update(windows_done=F("windows_done") + 1, heartbeat_at=now)
        walk_forward = walk_forwards.first()
        if walk_forward is not None:
            publish(walk_forward)
    logger.info(
        "walk_forward.window_done",
        extra=context(
            walk_forward_id=window.walk_forward_id,
            window=window.index,
            params=optimization.best_params,
            in_sample_return=(optimization.best_metrics or {}).get("total_return"),
            out_of_sample_return=result.metrics.get("total_return"),
        ),
    )


def _window_failed(window: WalkForwardWindow, why: str) -> str:
    """The window failed, and the walk-forward with it (see the module's docstring)."""
    now = timezone.now()
    with transaction.atomic():
        failed = WalkForwardWindow.objects.filter(pk=window.pk, status__in=ACTIVE_STATUSES).update(
            status=RunStatus.FAILED, error=f"This window failed: {why}", finished_at=now
        )
    if failed:
        logger.warning(
            "walk_forward.window_failed",
            extra=context(walk_forward_id=window.walk_forward_id, window=window.index, why=why),
        )
        start, end = window.in_sample_start, window.out_of_sample_end
        _fail(
            window.walk_forward_id,
            f"Window {window.index + 1} ({start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC) "
            f"failed: {why} The windows left were cancelled.",
        )
    return RunStatus.FAILED if failed else "skipped"


def _fail(walk_forward_id: int, error: str) -> None:
    """Fail an active walk-forward: its unfinished windows and their optimisations stop."""
    now = timezone.now()
    with transaction.atomic():
        failed = WalkForward.objects.filter(pk=walk_forward_id, status__in=ACTIVE_STATUSES).update(
            status=RunStatus.FAILED, error=error, finished_at=now
        )
        if not failed:
            return
        WalkForwardWindow.objects.filter(
            walk_forward_id=walk_forward_id, status__in=ACTIVE_STATUSES
        ).update(status=RunStatus.CANCELLED, finished_at=now)
        walk_forward = WalkForward.objects.get(pk=walk_forward_id)
        publish(walk_forward)
        notices.walk_forward_finished(walk_forward)
    cancel_window_optimizations(walk_forward_id=walk_forward_id)
    logger.warning(
        "walk_forward.failed", extra=context(walk_forward_id=walk_forward_id, error=error)
    )


# --- closing the walk-forward ------------------------------------------------------------------


def walk_forward_finish(*, walk_forward_id: int) -> str:
    """Close a walk-forward whose windows are all done: stitch their out-of-sample runs, store
    the result and the overfitting ratio. Idempotent; returns the walk-forward's status."""
    walk_forward = WalkForward.objects.filter(pk=walk_forward_id).first()
    if walk_forward is None:
        return "deleted"
    windows = list(walk_forward.windows.order_by("index"))
    all_done = len(windows) == walk_forward.window_count and all(
        window.status == RunStatus.DONE for window in windows
    )
    if not walk_forward.is_active or not all_done:
        return walk_forward.status
    beating = WalkForward.objects.filter(pk=walk_forward_id, status__in=ACTIVE_STATUSES)
    try:
        with Heartbeat(beating, label=f"walk-forward-{walk_forward_id}"):
            stitched = _stitched(walk_forward, windows)
    except EXPECTED_ERRORS as exc:
        _fail(walk_forward_id, f"Its out-of-sample runs could not be stitched: {exc}")
        return RunStatus.FAILED
    except Exception:
        logger.exception(
            "walk_forward.finish_crashed", extra=context(walk_forward_id=walk_forward_id)
        )
        _fail(walk_forward_id, f"Its out-of-sample runs could not be stitched. {UNEXPECTED}")
        return RunStatus.FAILED
    return _close(walk_forward_id, windows, stitched)


def _stitched(walk_forward: WalkForward, windows: list[WalkForwardWindow]) -> Stitched:
    pieces = []
    for window in windows:
        result, candles = window_result(walk_forward, window, window.params or {})
        pieces.append(Piece.of(result, candles["close"]))
    return stitch(pieces, float(walk_forward.initial_cash))


def _close(walk_forward_id: int, windows: list[WalkForwardWindow], stitched: Stitched) -> str:
    with transaction.atomic():
        walk_forward = WalkForward.objects.select_for_update().get(pk=walk_forward_id)
        if not walk_forward.is_active:
            return walk_forward.status
        out_days = walk_forward.window_count * walk_forward.out_of_sample_days
        in_sample = in_sample_annualised(
            [(_total_return(window.in_sample_metrics), _days(window)) for window in windows]
        )
        total = stitched.metrics.get("total_return")
        out_of_sample = None if total is None else annualised_return(total, out_days)
        walk_forward.metrics = stitched.metrics
        walk_forward.equity = thinned(
            stitched.times, stitched.equity, settings.BACKTEST_EQUITY_POINTS
        )
        walk_forward.trade_count = int(stitched.metrics.get("trade_count") or 0)
        walk_forward.in_sample_return = in_sample
        walk_forward.out_of_sample_return = out_of_sample
        walk_forward.overfitting_ratio = overfitting_ratio(in_sample, out_of_sample)
        walk_forward.status = RunStatus.DONE
        walk_forward.error = ""
        walk_forward.finished_at = timezone.now()
        walk_forward.save()
        publish(walk_forward)
        notices.walk_forward_finished(walk_forward)
    logger.info(
        "walk_forward.finished",
        extra=context(
            walk_forward_id=walk_forward_id,
            out_of_sample_return=total,
            in_sample_annualised=in_sample,
            out_of_sample_annualised=out_of_sample,
            overfitting_ratio=walk_forward.overfitting_ratio,
        ),
    )
    return RunStatus.DONE


def _total_return(metrics: dict[str, object] | None) -> float:
    value = (metrics or {}).get("total_return")
    return float(value) if isinstance(value, int | float) else float("nan")


def _days(window: WalkForwardWindow) -> float:
    return (window.in_sample_end - window.in_sample_start) / timedelta(days=1)


# --- housekeeping ------------------------------------------------------------------------------


def walk_forwards_fail_stale(*, now: datetime | None = None) -> int:
    """Every minute (beat): what a lost message or worker left behind is sent again.

    - a window ``running`` whose worker stopped beating goes back to ``queued`` and its task is
      sent again (a window lost ``BACKTEST_MAX_ATTEMPTS`` times fails);
    - a window ``queued`` whose optimisation is over (or gone) and whose task was not sent, or
      was sent ``BACKTEST_STALE_SECONDS`` ago, gets it again (a duplicate finds it claimed);
    - a walk-forward whose windows are all done but which is still open is finished again.

    Returns how many tasks were sent."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_STALE_SECONDS)
    windows = WalkForwardWindow.objects.filter(walk_forward__status__in=ACTIVE_STATUSES)
    lost = windows.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    for pk in lost.values_list("pk", flat=True):
        WalkForwardWindow.objects.filter(
            pk=pk, status=RunStatus.RUNNING, heartbeat_at__lt=cutoff
        ).update(status=RunStatus.QUEUED, enqueued_at=None)
    over = [RunStatus.DONE, RunStatus.FAILED, RunStatus.CANCELLED]
    unsent = windows.filter(status=RunStatus.QUEUED).filter(
        Q(optimization=None) | Q(optimization__status__in=over)
    )
    sent = 0
    for pk in unsent.filter(Q(enqueued_at=None) | Q(enqueued_at__lt=cutoff)).values_list(
        "pk", flat=True
    ):
        stamped = WalkForwardWindow.objects.filter(
            Q(enqueued_at=None) | Q(enqueued_at__lt=cutoff), pk=pk, status=RunStatus.QUEUED
        ).update(enqueued_at=now)
        if stamped:
            send_window(pk)
            sent += 1
    sent += _finish_stalled(cutoff)
    if sent:
        logger.warning("walk_forwards.resent", extra=context(count=sent))
    return sent


def _finish_stalled(cutoff: datetime) -> int:
    """Walk-forwards whose windows are all done, silent since ``cutoff``: finished again."""
    stalled = WalkForward.objects.filter(
        status__in=ACTIVE_STATUSES, windows_done__gte=F("window_count")
    ).filter(Q(heartbeat_at=None) | Q(heartbeat_at__lt=cutoff))
    sent = 0
    for pk in stalled.values_list("pk", flat=True):
        try:
            enqueue_task(FINISH_TASK, pk, queue=settings.BACKTESTS_QUEUE)
        except Exception as exc:
            logger.warning(
                "walk_forward.finish_enqueue_failed",
                extra=context(walk_forward_id=pk, error=type(exc).__name__),
            )
            break
        sent += 1
    return sent
