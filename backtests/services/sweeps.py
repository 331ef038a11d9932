"""Parameter sweeps: their combinations run in batches, a Celery task per batch.

A sweep's combinations are stored as ``SweepRun`` rows and sent in batches of
:func:`batch_size` (a task per batch on the backtests queue), so every worker on every machine
takes some; :mod:`backtests.services.sweep_runs` runs them, and whoever records the last
combination closes the sweep (:mod:`backtests.services.sweep_results`; the ranking by
``rank_by`` is computed on read, ``selectors.sweep_ranking``). Each combination records its own
result (``done`` with metrics, or ``failed`` with the error), so one bad combination fails alone.

If a worker is lost mid-batch, :func:`sweeps_fail_stale` fails the combinations it was running
and finishes the sweep once none is left; the rest of its batch comes back with its message
(late acknowledgement). Combinations whose message was lost are sent again, one per message, by
:func:`sweeps_requeue_lost` and, at a worker's start, :func:`sweeps_recover`.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from backtests.grid import ExpandedGrid, GridError, expand_grid
from backtests.metrics import RANKABLE_METRICS
from backtests.models import ACTIVE_STATUSES, RunStatus, Sweep, SweepRun
from backtests.services.config import (
    SHORT_PARAM,
    check_market_terms,
    checked_period,
    one_create_at_a_time,
    run_spec_check,
)
from backtests.services.runs import (
    RECOVER_AFTER_SECONDS,
    orphans_resend,
    requeue_overdue,
    rerun_fields,
    unqueued,
    without_message,
)
from backtests.services.sweep_results import Outcome, record, sweep_finish
from backtests.services.sweep_results import publish as _publish
from backtests.services.sweep_runs import RUNS_TASK, send_runs
from backtests.spec import RunSpec
from strategies.base import Strategy
from tradingbot.broker import PendingTask
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

# The task of one combination, before batches: messages sent by an older release still name it.
COMBINATION_TASK = "backtests.tasks.run_sweep_combination_task"
# A batch is at most SWEEP_BATCH_SIZE combinations (8), and fewer when that would make fewer
# than SPREAD_TASKS tasks: four each for four worker processes (two machines' worth), so that
# the last batches end at about the same time everywhere. A sweep of 100 is 15 tasks of 7, one
# of up to 16 combinations is a task each. A task costs about 10 ms besides its combinations
# (the message, a database connection, reading its rows, writing their outcomes together).
SPREAD_TASKS = 16
STALE_ERROR = "Its worker stopped responding (lost or killed)."


def sweep_create(
    *,
    user: User,
    spec: RunSpec,
    start: datetime,
    end: datetime,
    grid: Any,
    rank_by: str,
) -> Sweep:
    """Check the grid and the rest, store the sweep and its combinations, send their batches.

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


def batch_size(combinations: int) -> int:
    """How many combinations a task runs: ``SWEEP_BATCH_SIZE`` at most, fewer when the sweep
    would otherwise be fewer than ``SPREAD_TASKS`` tasks (1 for a sweep of up to that many)."""
    return max(1, min(settings.SWEEP_BATCH_SIZE, math.ceil(combinations / SPREAD_TASKS)))


def _launch(sweep: Sweep, run_ids: list[int]) -> None:
    size = batch_size(len(run_ids))
    try:
        for first in range(0, len(run_ids), size):
            send_runs(run_ids[first : first + size])
    except Exception as exc:
        # The sweep fails unless a worker has started it already (its batches sent so far then
        # find it failed); if one has, it goes on, and the requeue of lost messages sends the
        # batches that were not sent, one combination per message.
        unqueued(Sweep, sweep.pk, cause=exc, event=_publish)


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


# --- Housekeeping ------------------------------------------------------------------------------


def sweeps_fail_stale(*, now: datetime | None = None) -> int:
    """Fail combinations whose worker went silent, then finish the sweeps they held up."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_STALE_SECONDS)
    stale = SweepRun.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    by_sweep: defaultdict[int, list[Outcome]] = defaultdict(list)
    for run_id, sweep_id in stale.values_list("pk", "sweep_id"):
        by_sweep[sweep_id].append(Outcome(run_id, error=STALE_ERROR))
    failed = sum(len(record(sweep_id, outcomes)) for sweep_id, outcomes in by_sweep.items())
    # A sweep whose last combination was never recorded by a worker: finish it here.
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
    """Send again, one per message, the combinations of active sweeps queued for
    ``BACKTEST_REQUEUE_SECONDS`` or more (see ``backtests_requeue_lost``). The sweep finishes
    when the last of them is recorded, as it would have."""
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
    ``backtests_recover``). Returns how many were sent.

    A batch's message delivered long ago still holds the combinations it has not reached while
    its worker works through the others: it counts as held while one of them runs on another
    node."""
    now = now or timezone.now()
    runs = SweepRun.objects.filter(sweep__status__in=ACTIVE_STATUSES)
    resent = orphans_resend(
        runs, worker=worker, booted_at=booted_at, now=now, send=_send, name="sweeps"
    )
    if held is None:
        return resent
    cutoff = now - timedelta(seconds=RECOVER_AFTER_SECONDS)
    queued = runs.filter(status=RunStatus.QUEUED, enqueued_at__lt=cutoff).only("pk")

    def worked_on(run_ids: list[int]) -> bool:
        running = SweepRun.objects.filter(pk__in=run_ids, status=RunStatus.RUNNING)
        return running.exclude(worker=worker).exists()

    lost = without_message(
        queued, held, task=(RUNS_TASK, COMBINATION_TASK), now=now, still_working=worked_on
    )
    return resent + requeue_overdue(lost, cutoff=cutoff, now=now, send=_send, name="sweeps")


def _send(run: SweepRun) -> None:
    send_runs([run.pk])
