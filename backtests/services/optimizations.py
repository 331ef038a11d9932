"""Optimisations: create, cancel, delete, finish, and the housekeeping of lost workers.

Creating one stores it and sends ``OPTIMIZATION_PARALLEL_TASKS`` tasks (at most one per trial)
to the backtests queue. Each task runs trials one after the other (``optimization_trials``)
until every trial is claimed, so N free workers run N trials at once, on any machine. The task
that finds the last trial finished closes the optimisation: the best trial, the Pareto front of
several objectives, and the parameter importances.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from backtests.events import optimization_status_data
from backtests.models import ACTIVE_STATUSES, Optimization, RunStatus, TrialState
from backtests.search_space import (
    SearchSpaceError,
    check_sampler,
    default_sampler,
    grid_size,
    parse_objectives,
    parse_space,
)
from backtests.services import notices, studies, walk_forward_hooks
from backtests.services.config import (
    SHORT_PARAM,
    check_market_terms,
    checked_period,
    one_create_at_a_time,
    run_spec_check,
)
from backtests.services.runs import publish_status, rerun_fields, unqueued
from backtests.spec import RunSpec
from backtests.trial_results import pareto_front
from strategies.base import Strategy
from tradingbot.errors import AppError
from tradingbot.logconfig import context
from tradingbot.tasks import enqueue as enqueue_task

logger = logging.getLogger(__name__)

TRIALS_TASK = "backtests.tasks.run_optimization_trials_task"


def optimization_create(
    *,
    user: User,
    spec: RunSpec,
    start: datetime,
    end: datetime,
    space: Any,
    objective: Any,
    trials: int,
    sampler: str | None = None,
    min_trades: int = 1,
    seed: int | None = None,
) -> Optimization:
    """Check everything, store the optimisation and send its tasks once committed.

    ``spec.params`` are the parameters fixed for every trial; ``space`` searches the others.
    Raises AppError (400 with the field named, 429 for the quota) and writes nothing."""
    checked = run_spec_check(spec=spec, partial_params=True)
    fields = search_fields(checked.strategy, spec, space, objective, sampler, trials)
    candle_count = checked_period(spec=spec, start=start, end=end)
    with one_create_at_a_time(user):
        optimization = Optimization.objects.create(
            user=user,
            start=start,
            end=end,
            candle_count=candle_count,
            min_trades=min_trades,
            seed=seed,
            enqueued_at=timezone.now(),
            **fields,
            **checked.fields,
        )
        publish(optimization)
        transaction.on_commit(lambda: _launch(optimization))
    logger.info(
        "optimization.created",
        extra=context(
            optimization_id=optimization.pk,
            user_id=user.pk,
            strategy=spec.strategy,
            trials=optimization.trial_count,
            sampler=optimization.sampler,
            candles=candle_count,
        ),
    )
    return optimization


def search_fields(
    strategy: type[Strategy],
    spec: RunSpec,
    space: Any,
    objective: Any,
    sampler: str | None,
    trials: int,
) -> dict[str, Any]:
    """The space, objectives, sampler and trial count as stored (AppError when invalid)."""
    try:
        _check_fixed(strategy, spec.params)
        dimensions = parse_space(strategy, space, spec.params)
        objectives = parse_objectives(objective)
        sampler = sampler or default_sampler(objectives)
        check_sampler(sampler)
        if sampler == "grid":
            trials = min(trials, grid_size(dimensions))
    except SearchSpaceError as exc:
        raise AppError(exc.code, str(exc), details=exc.errors) from None
    short = dimensions.get(SHORT_PARAM)
    shorts = short.choices if short else [spec.params.get(SHORT_PARAM)]
    check_market_terms(spec=spec, shorts=shorts)
    return {
        "space": {name: dimension.as_json() for name, dimension in dimensions.items()},
        "objectives": [item.as_json() for item in objectives],
        "sampler": sampler,
        "trial_count": trials,
    }


def _check_fixed(strategy: type[Strategy], fixed: Mapping[str, Any]) -> None:
    declared = {param.name: param for param in strategy.params}
    errors: dict[str, list[str]] = {}
    for name, value in fixed.items():
        try:
            declared[name].clean(value)
        except KeyError:
            errors[f"params.{name}"] = [f"{name!r} is not a parameter of {strategy.key}"]
        except ValueError as exc:
            errors[f"params.{name}"] = [str(exc)]
    if errors:
        raise SearchSpaceError("invalid_params", "The fixed parameters are invalid.", errors)


def optimization_rerun(*, optimization: Optimization) -> Optimization:
    """A new optimisation of the same search, configuration and period (checked again)."""
    return optimization_create(
        **rerun_fields(optimization),
        space=optimization.space,
        objective=optimization.objectives,
        trials=optimization.trial_count,
        sampler=optimization.sampler,
        min_trades=optimization.min_trades,
        seed=optimization.seed,
    )


def _launch(optimization: Optimization) -> None:
    tasks = min(optimization.trial_count, settings.OPTIMIZATION_PARALLEL_TASKS)
    try:
        for _ in range(tasks):
            send(optimization)
    except Exception as exc:
        unqueued(Optimization, optimization.pk, cause=exc, event=publish)


def send(optimization: Optimization) -> None:
    enqueue_task(TRIALS_TASK, optimization.pk, queue=settings.BACKTESTS_QUEUE)


def optimization_cancel(*, optimization: Optimization) -> Optimization:
    """Cancel an active optimisation: no new trial starts; a running one finishes."""
    with transaction.atomic():
        cancelled = Optimization.objects.filter(
            pk=optimization.pk, status__in=ACTIVE_STATUSES
        ).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
        optimization.refresh_from_db()
        if cancelled:
            publish(optimization)
    if cancelled:
        logger.info(
            "optimization.cancelled",
            extra=context(optimization_id=optimization.pk, user_id=optimization.user_id),
        )
    return optimization


def optimization_delete(*, optimization: Optimization) -> None:
    if optimization.is_active:
        optimization_cancel(optimization=optimization)
    pk, name = optimization.pk, optimization.study_name
    optimization.delete()
    try:
        studies.delete(name)
    except Exception as exc:  # the record is gone; a leftover study only takes space
        logger.warning(
            "optimization.study_delete_failed",
            extra=context(optimization_id=pk, error=type(exc).__name__),
        )
    logger.info("optimization.deleted", extra=context(optimization_id=pk))


def publish(optimization: Optimization) -> None:
    """``optimization.status``; the walk-forward it is a window of, if any, hears of it too."""
    publish_status("optimization", optimization, optimization_status_data(optimization))
    walk_forward_hooks.optimization_published(optimization)


# --- Finishing ---------------------------------------------------------------------------------


def optimization_finish(*, optimization_id: int) -> str:
    """Close an optimisation whose trials have all finished: the best trial, the Pareto front and
    the importances. Idempotent: any number of tasks may call it."""
    current = Optimization.objects.filter(pk=optimization_id).first()
    if current is None or not _all_finished(current):
        return current.status if current else "deleted"
    importances = studies.param_importances(current.study_name) if current.done_count > 1 else {}
    with transaction.atomic():
        optimization = Optimization.objects.select_for_update().get(pk=optimization_id)
        if optimization.status not in ACTIVE_STATUSES:
            return optimization.status
        _close(optimization, importances)
        publish(optimization)
        notices.optimization_finished(optimization)
    logger.info(
        "optimization.finished",
        extra=context(
            optimization_id=optimization.pk,
            status=optimization.status,
            done=optimization.done_count,
            pruned=optimization.pruned_count,
            failed=optimization.failed_count,
            best_value=optimization.best_value,
            best_params=optimization.best_params,
        ),
    )
    return optimization.status


def _all_finished(optimization: Optimization) -> bool:
    return (
        optimization.status in ACTIVE_STATUSES
        and optimization.claimed_count >= optimization.trial_count
        and not optimization.trials.filter(state=TrialState.RUNNING).exists()
    )


def _close(optimization: Optimization, importances: dict[str, float]) -> None:
    feasible = list(
        optimization.trials.filter(state=TrialState.COMPLETE, feasible=True).values(
            "number", "params", "value", "values", "metrics"
        )
    )
    front = pareto_front([(row["number"], row["values"]) for row in feasible])
    best = max(
        (row for row in feasible if row["number"] in front),
        key=lambda row: (row["value"], -row["number"]),
        default=None,
    )
    optimization.pareto = sorted(front) if optimization.is_multi_objective else []
    optimization.importances = importances
    if best is None:
        optimization.status = RunStatus.FAILED
        optimization.error = (
            "No trial made a result: every trial failed, was skipped, or made fewer than "
            f"{optimization.min_trades} trades."
        )
    else:
        optimization.status = RunStatus.DONE
        optimization.best_trial = best["number"]
        optimization.best_params = best["params"]
        optimization.best_value = best["value"]
        optimization.best_metrics = best["metrics"]
    optimization.finished_at = timezone.now()
    optimization.save()


# --- Housekeeping ------------------------------------------------------------------------------


def optimizations_fail_stale(*, now: datetime | None = None) -> int:
    """Trials whose worker went silent (no task of their optimisation beats any more): failed.
    Then each such optimisation is finished, or its tasks are sent again for the trials left."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_STALE_SECONDS)
    silent = Optimization.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    failed = 0
    for optimization in silent:
        failed += _fail_running_trials(optimization, now)
        if optimization_finish(optimization_id=optimization.pk) == RunStatus.RUNNING:
            _resend(Optimization.objects.filter(pk=optimization.pk), cutoff=cutoff, now=now)
    if failed:
        logger.warning("optimizations.stale_failed", extra=context(trials=failed))
    return failed


def _fail_running_trials(optimization: Optimization, now: datetime) -> int:
    with transaction.atomic():
        failed = optimization.trials.filter(state=TrialState.RUNNING).update(
            state=TrialState.FAILED,
            error="Its worker stopped responding (lost or killed).",
            finished_at=now,
        )
        if failed:
            Optimization.objects.filter(pk=optimization.pk).update(
                failed_count=F("failed_count") + failed
            )
    return failed


def optimizations_requeue_lost(*, now: datetime | None = None) -> int:
    """Send again the tasks of optimisations still queued ``BACKTEST_REQUEUE_SECONDS`` after
    they were sent (the broker lost them); a duplicate task finds nothing to do."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKTEST_REQUEUE_SECONDS)
    queued = Optimization.objects.filter(status=RunStatus.QUEUED)
    return _resend(queued.filter(Q(enqueued_at__lt=cutoff) | Q(enqueued_at=None)), cutoff, now)


def _resend(rows: Iterable[Optimization] | Any, cutoff: datetime, now: datetime) -> int:
    sent = 0
    for optimization in rows:
        stamped = Optimization.objects.filter(
            Q(enqueued_at__lt=cutoff) | Q(enqueued_at=None), pk=optimization.pk
        ).update(enqueued_at=now)
        if stamped:
            left = optimization.trial_count - optimization.claimed_count
            for _ in range(max(1, min(left, settings.OPTIMIZATION_PARALLEL_TASKS))):
                send(optimization)
            sent += 1
    if sent:
        logger.warning("optimizations.requeued", extra=context(count=sent))
    return sent
