"""Parameter sweeps: one Celery task per combination, fanned out as a chord.

The combinations of a sweep are independent tasks on the backtests queue, so every worker on
every machine takes some; the chord's callback closes the sweep once all have finished (the
ranking by ``rank_by`` is computed on read, ``selectors.sweep_ranking``). Each
combination records its own result (``done`` with metrics, or ``failed`` with the error) and
never raises, so one bad combination cannot stall the chord.

A worker process keeps the candles of the sweep it last worked on (keyed by sweep id: a sweep's
candles are fixed when it is created), so it reads them once, not once per combination.

If a worker is lost mid-combination, the chord never completes; :func:`sweeps_fail_stale` fails
that combination and finishes the sweep from the others. Combinations whose message was lost are
sent again by :func:`sweeps_requeue_lost`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from celery import chord, group
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from backtests import selectors
from backtests.events import sweep_status_data
from backtests.grid import ExpandedGrid, GridError, expand_grid
from backtests.metrics import RANKABLE_METRICS
from backtests.models import ACTIVE_STATUSES, RunStatus, Sweep, SweepRun
from backtests.runner import run_backtest
from backtests.services import notices
from backtests.services.config import (
    SHORT_PARAM,
    check_market_terms,
    checked_period,
    one_create_at_a_time,
    run_spec_check,
)
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
from strategies.base import Strategy
from strategies.registry import active
from tradingbot.broker import PendingTask
from tradingbot.errors import AppError
from tradingbot.logconfig import context
from tradingbot.metrics import SWEEP_DURATION
from tradingbot.tasks import enqueue as enqueue_task
from tradingbot.tasks import task_signature

logger = logging.getLogger(__name__)

COMBINATION_TASK = "backtests.tasks.run_sweep_combination_task"
FINISH_TASK = "backtests.tasks.finish_sweep_task"
CANDLE_CACHE_SIZE = 2
_candle_cache: OrderedDict[int, pd.DataFrame] = OrderedDict()
_last_progress_event: OrderedDict[int, float] = OrderedDict()


def sweep_create(
    *,
    user: User,
    spec: RunSpec,
    start: datetime,
    end: datetime,
    grid: Any,
    rank_by: str,
) -> Sweep:
    """Check the grid and the rest, store the sweep and its combinations, launch the chord.

    ``spec.params`` are the parameters fixed for every combination; ``grid`` maps the others to
    their values (a list, or a ``{"start", "stop", "step"}`` range).
    """
    checked = run_spec_check(spec=spec, partial_params=True)
    expanded = _expanded_grid(checked.strategy, grid, spec.params, rank_by)
    check_market_terms(spec=spec, shorts=(run.get(SHORT_PARAM) for run in expanded.combinations))
    candle_count = checked_period(spec=spec, start=start, end=end)
    with one_create_at_a_time(user):
        sweep = Sweep.objects.create(
            user=user,
            start=start,
            end=end,
            grid=expanded.axes,
            rank_by=rank_by,
            combination_count=len(expanded.combinations),
            skipped_count=expanded.skipped,
            candle_count=candle_count,
            **checked.fields,
        )
        run_ids = _store_combinations(sweep, expanded.combinations)
        _publish(sweep)  # before the launch, as for a backtest (see backtest_create)
        transaction.on_commit(lambda: _launch(sweep, run_ids))
    logger.info(
        "sweep.created",
        extra=context(
            sweep_id=sweep.pk,
            user_id=user.pk,
            strategy=spec.strategy,
            combinations=sweep.combination_count,
            skipped=sweep.skipped_count,
            candles=candle_count,
        ),
    )
    return sweep


def sweep_rerun(*, sweep: Sweep) -> Sweep:
    """A new sweep of the same grid, configuration and period (checked again, as if new)."""
    return sweep_create(**rerun_fields(sweep), grid=sweep.grid, rank_by=sweep.rank_by)


def _expanded_grid(
    strategy: type[Strategy], grid: Any, fixed: Mapping[str, Any], rank_by: str
) -> ExpandedGrid:
    if rank_by not in RANKABLE_METRICS:
        raise AppError(
            "validation_error",
            "The request has invalid fields.",
            details={"rank_by": [f"one of {', '.join(RANKABLE_METRICS)}"]},
        )
    try:
        return expand_grid(strategy, grid, fixed, max_combinations=settings.SWEEP_MAX_COMBINATIONS)
    except GridError as exc:
        raise AppError(exc.code, str(exc), details=exc.errors) from None


def _store_combinations(sweep: Sweep, combinations: list[dict[str, Any]]) -> list[int]:
    """Store one queued row per combination; their ids, in grid order."""
    runs = SweepRun.objects.bulk_create(
        SweepRun(sweep=sweep, seq=seq, params=combination, enqueued_at=sweep.created_at)
        for seq, combination in enumerate(combinations)
    )
    if runs[0].pk:
        return [run.pk for run in runs]
    # Databases that do not return the ids of a bulk insert
    return list(sweep.runs.order_by("seq").values_list("pk", flat=True))


def _launch(sweep: Sweep, run_ids: list[int]) -> None:
    queue = settings.BACKTESTS_QUEUE
    header = group(
        task_signature(COMBINATION_TASK, run_id, queue=queue, immutable=True) for run_id in run_ids
    )
    callback = task_signature(FINISH_TASK, sweep.pk, queue=queue, immutable=True)
    try:
        result = chord(header, callback).apply_async()
    except Exception as exc:
        unqueued(Sweep, sweep.pk, cause=exc, event=_publish)
        return
    Sweep.objects.filter(pk=sweep.pk).update(task_id=result.id)


def sweep_cancel(*, sweep: Sweep) -> Sweep:
    """Cancel an active sweep: combinations not yet started are skipped by the workers."""
    now = timezone.now()
    with transaction.atomic():
        cancelled = Sweep.objects.filter(pk=sweep.pk, status__in=ACTIVE_STATUSES).update(
            status=RunStatus.CANCELLED, finished_at=now
        )
        if cancelled:
            sweep.runs.filter(status=RunStatus.QUEUED).update(
                status=RunStatus.CANCELLED, finished_at=now
            )
        sweep.refresh_from_db()
        if cancelled:
            _publish(sweep)
    if cancelled:
        logger.info("sweep.cancelled", extra=context(sweep_id=sweep.pk, user_id=sweep.user_id))
    return sweep


def sweep_delete(*, sweep: Sweep) -> None:
    if sweep.is_active:
        sweep_cancel(sweep=sweep)
    sweep_id = sweep.pk
    sweep.delete()
    logger.info("sweep.deleted", extra=context(sweep_id=sweep_id))


# --- Running (in a worker) ---------------------------------------------------------------------


def sweep_run_execute(*, run_id: int, worker: str = "") -> str:
    """Run one combination (the body of ``run_sweep_combination_task``); never raises."""
    run = _claim(run_id, worker)
    if run is None:
        return "skipped"
    sweep = run.sweep
    beating = SweepRun.objects.filter(pk=run_id, status=RunStatus.RUNNING)
    try:
        with Heartbeat(beating, label=f"sweep-run-{run_id}"):
            candles = _sweep_candles(sweep)
            strategy = active().create(sweep.strategy_id, run.params)
            metrics = run_backtest(candles, strategy, **engine_inputs(sweep, candles)).metrics
    except SoftTimeLimitExceeded:
        return _record(run, error="It took longer than the time limit for a backtest.")
    except EXPECTED_ERRORS as exc:
        return _record(run, error=str(exc))
    except Exception:
        logger.exception(
            "sweep.combination_crashed", extra=context(sweep_id=sweep.pk, run_id=run_id)
        )
        return _record(
            run, error="An unexpected error stopped this combination. It has been logged."
        )
    return _record(run, metrics=metrics)


def _claim(run_id: int, worker: str) -> SweepRun | None:
    now = timezone.now()
    with transaction.atomic():
        claimed = SweepRun.objects.filter(
            pk=run_id,
            status__in=ACTIVE_STATUSES,
            sweep__status__in=ACTIVE_STATUSES,
        ).update(status=RunStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker)
        if not claimed:
            return None
        run = SweepRun.objects.select_related("sweep").get(pk=run_id)
        started = Sweep.objects.filter(pk=run.sweep_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now, heartbeat_at=now
        )
        if started:
            run.sweep.status = RunStatus.RUNNING
            _publish(run.sweep)
    return run


def _sweep_candles(sweep: Sweep) -> pd.DataFrame:
    candles = _candle_cache.get(sweep.pk)
    if candles is None:
        candles = period_candles(sweep)
        _candle_cache[sweep.pk] = candles
        while len(_candle_cache) > CANDLE_CACHE_SIZE:
            _candle_cache.popitem(last=False)
    _candle_cache.move_to_end(sweep.pk)
    return candles


def _record(run: SweepRun, *, metrics: dict[str, Any] | None = None, error: str = "") -> str:
    status = RunStatus.FAILED if error else RunStatus.DONE
    counter = "failed_count" if error else "done_count"
    now = timezone.now()
    with transaction.atomic():
        recorded = SweepRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
            status=status, metrics=metrics, error=error, finished_at=now
        )
        if not recorded:
            return "skipped"
        Sweep.objects.filter(pk=run.sweep_id).update(**{counter: F(counter) + 1}, heartbeat_at=now)
        sweep = Sweep.objects.get(pk=run.sweep_id)
        if _progress_event_due(sweep):
            _publish(sweep)
    if error:
        logger.warning(
            "sweep.combination_failed", extra=context(sweep_id=run.sweep_id, run_id=run.pk)
        )
    return status


def _progress_event_due(sweep: Sweep) -> bool:
    """At most one progress event per sweep every PROGRESS_EVERY_SECONDS from this process, but
    always the last one: a 1,000-combination sweep must not send 1,000 events."""
    now = time.monotonic()
    last = _last_progress_event.get(sweep.pk)
    finished = sweep.done_count + sweep.failed_count >= sweep.combination_count
    if not finished and last is not None and now - last < PROGRESS_EVERY_SECONDS:
        return False
    _last_progress_event[sweep.pk] = now
    _last_progress_event.move_to_end(sweep.pk)
    while len(_last_progress_event) > 100:
        _last_progress_event.popitem(last=False)
    return True


def sweep_finish(*, sweep_id: int) -> str:
    """Rank and close a sweep once no combination is left to run (the chord's callback)."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().filter(pk=sweep_id).first()
        if sweep is None or sweep.status not in ACTIVE_STATUSES:
            return sweep.status if sweep else "deleted"
        if sweep.runs.filter(status__in=ACTIVE_STATUSES).exists():
            return sweep.status
        all_failed = sweep.done_count == 0
        sweep.status = RunStatus.FAILED if all_failed else RunStatus.DONE
        sweep.error = "Every combination failed; see their errors." if all_failed else ""
        sweep.finished_at = timezone.now()
        sweep.save(update_fields=["status", "error", "finished_at"])
        SWEEP_DURATION.observe(run_seconds(sweep), status=sweep.status)
        _publish(sweep)
        notices.sweep_finished(sweep)
    best = selectors.sweep_ranking(sweep=sweep, limit=1)
    logger.info(
        "sweep.finished",
        extra=context(
            sweep_id=sweep.pk,
            status=sweep.status,
            done=sweep.done_count,
            failed=sweep.failed_count,
            rank_by=sweep.rank_by,
            best_params=best[0].params if best else None,
        ),
    )
    return sweep.status


def _publish(sweep: Sweep) -> None:
    publish_status("sweep", sweep, sweep_status_data(sweep))


# --- Housekeeping ------------------------------------------------------------------------------


def sweeps_fail_stale(*, now: datetime | None = None) -> int:
    """Fail combinations whose worker went silent, then finish the sweeps they held up."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_STALE_SECONDS)
    stale = SweepRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    failed = 0
    for run in stale:
        failed += _record(run, error="Its worker stopped responding (lost or killed).") == "failed"
    # A sweep whose chord lost a member never gets its callback: finish it here.
    finished = 0
    waiting = Sweep.objects.filter(status=RunStatus.RUNNING).exclude(
        Q(runs__status__in=ACTIVE_STATUSES)
    )
    for sweep_id in waiting.values_list("pk", flat=True).distinct():
        finished += sweep_finish(sweep_id=sweep_id) != RunStatus.RUNNING
    if failed or finished:
        logger.warning("sweeps.stale_failed", extra=context(runs=failed, sweeps=finished))
    return failed


def sweeps_requeue_lost(*, now: datetime | None = None) -> int:
    """Send again, one by one, the combinations of active sweeps queued for
    ``BACKTEST_REQUEUE_SECONDS`` or more (see ``backtests_requeue_lost``). Outside the chord:
    if the chord's own message was lost, its callback never comes, and ``sweeps_fail_stale``
    finishes the sweep once no combination is left."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_REQUEUE_SECONDS)
    overdue = SweepRun.objects.filter(
        status=RunStatus.QUEUED, enqueued_at__lt=cutoff, sweep__status__in=ACTIVE_STATUSES
    ).only("pk")
    return requeue_overdue(overdue, cutoff=cutoff, now=now, send=_send, name="sweeps")


def sweeps_recover(
    *,
    worker: str,
    booted_at: datetime,
    held: list[PendingTask] | None,
    now: datetime | None = None,
) -> int:
    """At a worker's start: send again the sweep combinations whose message is gone (see
    ``backtests_recover``). Returns how many were sent."""
    now = now or timezone.now()
    runs = SweepRun.objects.filter(sweep__status__in=ACTIVE_STATUSES)
    resent = orphans_resend(
        runs, worker=worker, booted_at=booted_at, now=now, send=_send, name="sweeps"
    )
    if held is None:
        return resent
    cutoff = now - timedelta(seconds=RECOVER_AFTER_SECONDS)
    queued = runs.filter(status=RunStatus.QUEUED, enqueued_at__lt=cutoff).only("pk")
    lost = without_message(queued, held, task=COMBINATION_TASK, now=now)
    return resent + requeue_overdue(lost, cutoff=cutoff, now=now, send=_send, name="sweeps")


def _send(run: SweepRun) -> None:
    enqueue_task(COMBINATION_TASK, run.pk, queue=settings.BACKTESTS_QUEUE)
