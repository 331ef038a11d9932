"""Walk-forwards: create, re-run, cancel and delete (their windows' work in a worker is
``walk_forward_windows``).

Creating one checks what an optimisation's create checks (strategy, fixed parameters, space,
objectives, sampler, market, period), then its windows: the period must hold them all, and
each window's in-sample and out-of-sample periods must hold stored candles. It then stores,
in ONE transaction counted once against the user's quota, the walk-forward, one ordinary
:class:`~backtests.models.Optimization` per window (its in-sample period) and the windows
pointing at them. After commit every window's optimisation tasks are sent at once, interleaved
(a task of each window, then a second of each...), so that free workers take different windows
and the windows are optimised in parallel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from backtests.models import (
    ACTIVE_STATUSES,
    Optimization,
    RunStatus,
    WalkForward,
    WalkForwardWindow,
    epoch_ms,
)
from backtests.services import optimizations
from backtests.services.config import (
    checked_period,
    one_create_at_a_time,
    run_spec_check,
)
from backtests.services.runs import rerun_fields, unqueued
from backtests.services.walk_forward_hooks import publish
from backtests.spec import RunSpec
from backtests.walk_forward import MAX_DAYS, MAX_WINDOWS, Window, days_needed, make_windows
from markets import selectors as market_selectors
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)


def walk_forward_create(
    *,
    user: User,
    spec: RunSpec,
    start: datetime,
    end: datetime,
    space: Any,
    objective: Any,
    trials: int,
    in_sample_days: int,
    out_of_sample_days: int,
    windows: int,
    anchored: bool = False,
    sampler: str | None = None,
    min_trades: int = 1,
    seed: int | None = None,
) -> WalkForward:
    """Check everything, store the walk-forward with its windows' optimisations, and send their
    tasks once committed. ``trials`` is per window. Raises AppError (400 with the field named,
    429 for the quota) and writes nothing."""
    checked = run_spec_check(spec=spec, partial_params=True)
    fields = optimizations.search_fields(checked.strategy, spec, space, objective, sampler, trials)
    _check_shape(in_sample_days, out_of_sample_days, windows)
    candle_count = checked_period(spec=spec, start=start, end=end)
    plan = _checked_windows(start, end, in_sample_days, out_of_sample_days, windows, anchored)
    counts = [_window_candles(spec, window) for window in plan]
    shared = {"user": user, "min_trades": min_trades, "seed": seed, **fields, **checked.fields}
    with one_create_at_a_time(user):
        walk_forward = WalkForward.objects.create(
            start=start,
            end=end,
            candle_count=candle_count,
            trials_per_window=fields["trial_count"],
            in_sample_days=in_sample_days,
            out_of_sample_days=out_of_sample_days,
            window_count=windows,
            anchored=anchored,
            **(shared | {"trial_count": fields["trial_count"] * windows}),
        )
        window_optimizations = [
            _store_window(walk_forward, window, in_count, out_count, shared)
            for window, (in_count, out_count) in zip(plan, counts, strict=True)
        ]
        publish(walk_forward)
        transaction.on_commit(lambda: _launch(walk_forward, window_optimizations))
    logger.info(
        "walk_forward.created",
        extra=context(
            walk_forward_id=walk_forward.pk,
            user_id=user.pk,
            strategy=spec.strategy,
            windows=windows,
            anchored=anchored,
            trials_per_window=walk_forward.trials_per_window,
        ),
    )
    return walk_forward


def _check_shape(in_sample_days: int, out_of_sample_days: int, windows: int) -> None:
    """The bounds the API's serializer states, for callers that bypass it (the admin, tests)."""
    bounds = {
        "in_sample_days": (in_sample_days, 1, MAX_DAYS),
        "out_of_sample_days": (out_of_sample_days, 1, MAX_DAYS),
        "windows": (windows, 1, MAX_WINDOWS),
    }
    errors = {
        name: [f"must be a whole number from {low} to {high}"]
        for name, (value, low, high) in bounds.items()
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
    }
    if errors:
        raise AppError("invalid_windows", "The windows are invalid.", details=errors)


def _checked_windows(
    start: datetime,
    end: datetime,
    in_sample_days: int,
    out_of_sample_days: int,
    windows: int,
    anchored: bool,
) -> list[Window]:
    """The windows, once their days fit in ``[start, end)``."""
    _check_span(start, end, in_sample_days, out_of_sample_days, windows)
    return make_windows(
        start,
        in_sample_days=in_sample_days,
        out_of_sample_days=out_of_sample_days,
        count=windows,
        anchored=anchored,
    )


def _check_span(
    start: datetime, end: datetime, in_sample_days: int, out_of_sample_days: int, windows: int
) -> None:
    needed = days_needed(
        in_sample_days=in_sample_days, out_of_sample_days=out_of_sample_days, count=windows
    )
    last = start + timedelta(days=needed)
    if last <= end:
        return
    have = (end - start) / timedelta(days=1)
    raise AppError(
        "period_too_short",
        f"{windows} windows of {in_sample_days} in-sample and {out_of_sample_days} "
        f"out-of-sample days need {needed} days from start ({in_sample_days} + {windows} × "
        f"{out_of_sample_days}), up to {last:%Y-%m-%d %H:%M} UTC; the period has {have:.1f} "
        "days. Move end later, or use fewer or shorter windows.",
        details={"end": [f"at least {last:%Y-%m-%d %H:%M} UTC ({needed} days from start)"]},
    )


def _window_candles(spec: RunSpec, window: Window) -> tuple[int, int]:
    """The stored candles of the window's in-sample and out-of-sample periods; AppError
    ``empty_window`` naming the window when either holds none."""
    counts = []
    periods = (
        ("in-sample", window.in_sample_start, window.in_sample_end),
        ("out-of-sample", window.out_of_sample_start, window.out_of_sample_end),
    )
    for part, start, end in periods:
        count = market_selectors.candles_in_period(
            exchange=spec.exchange,
            symbol=spec.symbol,
            timeframe=spec.timeframe,
            start_ms=epoch_ms(start),
            end_ms=epoch_ms(end),
        ).count()
        if not count:
            message = (
                f"Window {window.index + 1}'s {part} period ({start:%Y-%m-%d %H:%M} → "
                f"{end:%Y-%m-%d %H:%M} UTC) holds no stored {spec.symbol} {spec.timeframe} "
                f"candles of {spec.exchange}. Import candles or move the windows."
            )
            raise AppError("empty_window", message, details={"windows": [message]})
        counts.append(count)
    return counts[0], counts[1]


def _store_window(
    walk_forward: WalkForward,
    window: Window,
    in_count: int,
    out_count: int,
    shared: dict[str, Any],
) -> Optimization:
    optimization = Optimization.objects.create(
        start=window.in_sample_start,
        end=window.in_sample_end,
        candle_count=in_count,
        enqueued_at=timezone.now(),
        **shared,
    )
    WalkForwardWindow.objects.create(
        walk_forward=walk_forward,
        index=window.index,
        in_sample_start=window.in_sample_start,
        in_sample_end=window.in_sample_end,
        out_of_sample_start=window.out_of_sample_start,
        out_of_sample_end=window.out_of_sample_end,
        optimization=optimization,
        out_of_sample_candles=out_count,
    )
    return optimization


def _launch(walk_forward: WalkForward, window_optimizations: Sequence[Optimization]) -> None:
    rounds = min(walk_forward.trials_per_window, settings.OPTIMIZATION_PARALLEL_TASKS)
    try:
        for _ in range(rounds):
            for optimization in window_optimizations:
                optimizations.send(optimization)
    except Exception as exc:
        unqueued(WalkForward, walk_forward.pk, cause=exc, event=publish)
        for optimization in window_optimizations:
            unqueued(Optimization, optimization.pk, cause=exc, event=optimizations.publish)


def walk_forward_rerun(*, walk_forward: WalkForward) -> WalkForward:
    """A new walk-forward of the same search, windows, configuration and period (checked
    again)."""
    return walk_forward_create(
        **rerun_fields(walk_forward),
        space=walk_forward.space,
        objective=walk_forward.objectives,
        trials=walk_forward.trials_per_window,
        in_sample_days=walk_forward.in_sample_days,
        out_of_sample_days=walk_forward.out_of_sample_days,
        windows=walk_forward.window_count,
        anchored=walk_forward.anchored,
        sampler=walk_forward.sampler,
        min_trades=walk_forward.min_trades,
        seed=walk_forward.seed,
    )


def walk_forward_cancel(*, walk_forward: WalkForward) -> WalkForward:
    """Cancel an active walk-forward: its unfinished windows are cancelled, and so are their
    optimisations (no new trial starts; a running one finishes)."""
    now = timezone.now()
    with transaction.atomic():
        cancelled = WalkForward.objects.filter(
            pk=walk_forward.pk, status__in=ACTIVE_STATUSES
        ).update(status=RunStatus.CANCELLED, finished_at=now)
        if cancelled:
            walk_forward.windows.filter(status__in=ACTIVE_STATUSES).update(
                status=RunStatus.CANCELLED, finished_at=now
            )
        walk_forward.refresh_from_db()
        if cancelled:
            publish(walk_forward)
    if cancelled:
        cancel_window_optimizations(walk_forward_id=walk_forward.pk)
        logger.info(
            "walk_forward.cancelled",
            extra=context(walk_forward_id=walk_forward.pk, user_id=walk_forward.user_id),
        )
    return walk_forward


def cancel_window_optimizations(*, walk_forward_id: int) -> int:
    """Cancel the walk-forward's window optimisations still active; how many were."""
    active = Optimization.objects.filter(
        walk_forward_window__walk_forward_id=walk_forward_id, status__in=ACTIVE_STATUSES
    )
    cancelled = 0
    for optimization in active:
        optimization = optimizations.optimization_cancel(optimization=optimization)
        cancelled += optimization.status == RunStatus.CANCELLED
    return cancelled


def walk_forward_delete(*, walk_forward: WalkForward) -> None:
    """Delete the walk-forward, its windows and their optimisations (and Optuna's studies)."""
    if walk_forward.is_active:
        walk_forward_cancel(walk_forward=walk_forward)
    window_optimizations = Optimization.objects.filter(
        walk_forward_window__walk_forward=walk_forward
    )
    for optimization in window_optimizations:
        optimizations.optimization_delete(optimization=optimization)
    pk = walk_forward.pk
    walk_forward.delete()
    logger.info("walk_forward.deleted", extra=context(walk_forward_id=pk))
