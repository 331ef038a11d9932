"""An optimisation's trials, run in a worker (the body of ``run_optimization_trials_task``).

A task claims one trial at a time (a conditional increment of ``claimed_count``, so all tasks
together run exactly ``trial_count`` trials, whatever the number of workers) and runs it through
Optuna's ``optimize``: the sampler reads every finished trial from the shared study, and the
storage's heartbeat fails the trials of a worker that died. Each trial is a backtest on the
optimisation's candles, read once per worker process (``candle_cache``), recorded here as an
:class:`OptimizationTrial` and, when it beats the best so far, as the optimisation's best.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Any

import optuna
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from backtests.models import ACTIVE_STATUSES, Optimization, OptimizationTrial, RunStatus
from backtests.models import TrialState as State
from backtests.runner import run_backtest
from backtests.search_space import (
    Dimension,
    Objective,
    SearchSpaceError,
    parse_objectives,
    parse_space,
)
from backtests.services import candle_cache, studies
from backtests.services.heartbeat import Heartbeat
from backtests.services.optimizations import optimization_finish, publish, send
from backtests.services.runs import EXPECTED_ERRORS, PROGRESS_EVERY_SECONDS, engine_inputs
from strategies.params import StrategyParamError
from strategies.registry import UnknownStrategyError, active
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)

COUNTERS: dict[str, str] = {
    State.COMPLETE: "done_count",
    State.PRUNED: "pruned_count",
    State.FAILED: "failed_count",
}
_last_event: OrderedDict[int, float] = OrderedDict()


def optimization_work(*, optimization_id: int, worker: str = "", slot: int = 0) -> str:
    """Run trials of the optimisation until none is left to claim, then finish it if every
    trial has finished. Never raises for a trial's failure."""
    optimization = Optimization.objects.filter(
        pk=optimization_id, status__in=ACTIVE_STATUSES
    ).first()
    if optimization is None:
        return "skipped"
    studies.quiet_optuna()
    try:
        objective = TrialObjective(optimization, worker)
    except (UnknownStrategyError, SearchSpaceError) as exc:  # its strategy changed or left
        reasons = getattr(exc, "errors", {}) or {"": [str(exc)]}
        why = "; ".join(" ".join(messages) for messages in reasons.values())
        return _fail(optimization, f"It can no longer run: {why}")
    study = studies.study(
        optimization.study_name,
        directions=len(optimization.objectives),
        sampler=studies.make_sampler(
            optimization.sampler,
            space=objective.space,
            trial_count=optimization.trial_count,
            # numpy's seeds are below 2**32; the task's slot may be anywhere up to it
            seed=None if optimization.seed is None else (optimization.seed + slot) % 2**32,
        ),
    )
    ran = 0
    deadline = time.monotonic() + task_budget_seconds()
    beating = Optimization.objects.filter(pk=optimization_id)
    with Heartbeat(beating, label=f"optimization-{optimization_id}"):
        while time.monotonic() < deadline and _claim(optimization_id):
            study.optimize(objective, n_trials=1, catch=(Exception,))
            ran += 1
    if time.monotonic() >= deadline and _trials_left(optimization_id):
        send(optimization)  # this task's turn is up: a fresh task takes over its place
        return f"{ran} trials, continued"
    # Nothing left to claim: a trial of a dead worker may be all that holds up the finish.
    studies.fail_stale_trials(study)
    optimization_finish(optimization_id=optimization_id)
    return f"{ran} trials"


def _fail(optimization: Optimization, error: str) -> str:
    """Fail an optimisation none of whose trials can run (every task would fail the same way)."""
    with transaction.atomic():
        failed = Optimization.objects.filter(pk=optimization.pk, status__in=ACTIVE_STATUSES).update(
            status=RunStatus.FAILED, error=error, finished_at=timezone.now()
        )
        if failed:
            publish(Optimization.objects.get(pk=optimization.pk))
    if failed:
        logger.warning("optimization.unrunnable", extra=context(optimization_id=optimization.pk))
    return RunStatus.FAILED


def task_budget_seconds() -> float:
    """How long one task claims trials: half the soft time limit, so that the trial it started
    last ends well before the limit (a trial is one backtest, which the limit bounds anyway)."""
    return settings.CELERY_TASK_SOFT_TIME_LIMIT / 2


def _trials_left(optimization_id: int) -> bool:
    return Optimization.objects.filter(
        pk=optimization_id, status__in=ACTIVE_STATUSES, claimed_count__lt=F("trial_count")
    ).exists()


def _claim(optimization_id: int) -> bool:
    """One more trial for this task, if any is left and the optimisation is still active."""
    now = timezone.now()
    with transaction.atomic():
        claimed = Optimization.objects.filter(
            pk=optimization_id,
            status__in=ACTIVE_STATUSES,
            claimed_count__lt=F("trial_count"),
        ).update(claimed_count=F("claimed_count") + 1, heartbeat_at=now)
        if not claimed:
            return False
        started = Optimization.objects.filter(pk=optimization_id, status=RunStatus.QUEUED).update(
            status=RunStatus.RUNNING, started_at=now
        )
        if started:
            publish(Optimization.objects.get(pk=optimization_id))
    return True


class TrialObjective:
    """Optuna's objective: one backtest with the trial's parameters, its objectives' values."""

    def __init__(self, optimization: Optimization, worker: str) -> None:
        self.optimization = optimization
        self.worker = worker
        strategy_class = active().get(optimization.strategy_id)
        self.space: dict[str, Dimension] = parse_space(
            strategy_class, optimization.space, optimization.params
        )
        self.objectives: list[Objective] = parse_objectives(optimization.objectives)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        params = {
            **self.optimization.params,
            **{name: studies.suggest(trial, dim) for name, dim in self.space.items()},
        }
        row = OptimizationTrial.objects.create(
            optimization=self.optimization,
            number=trial.number,
            params=params,
            state=State.RUNNING,
            worker=self.worker,
            started_at=timezone.now(),
        )
        try:
            metrics = self._backtest(params)
        except StrategyParamError as exc:
            _record(row, State.PRUNED, error=f"The strategy rejects these parameters: {exc}")
            raise optuna.TrialPruned() from None
        except (SoftTimeLimitExceeded, *EXPECTED_ERRORS) as exc:
            _record(row, State.FAILED, error=str(exc) or "It took longer than the time limit.")
            raise
        except Exception:
            logger.exception(
                "optimization.trial_crashed",
                extra=context(optimization_id=self.optimization.pk, trial=trial.number),
            )
            _record(row, State.FAILED, error="An unexpected error stopped this trial. Logged.")
            raise
        return self._scored(trial, row, metrics)

    def _backtest(self, params: dict[str, Any]) -> dict[str, Any]:
        strategy = active().create(self.optimization.strategy_id, params)
        candles = candle_cache.run_candles(self.optimization)
        inputs = engine_inputs(self.optimization, candles)
        return run_backtest(candles, strategy, **inputs).metrics

    def _scored(
        self, trial: optuna.Trial, row: OptimizationTrial, metrics: dict[str, Any]
    ) -> float | tuple[float, ...]:
        values = [objective.value(metrics) for objective in self.objectives]
        trades = int(metrics.get("trade_count") or 0)
        if any(value is None for value in values):
            _record(row, State.PRUNED, metrics=metrics, error=_undefined(self.objectives, values))
            raise optuna.TrialPruned()
        scores = [float(value) for value in values if value is not None]
        # Optuna's feasibility: a constraint of at most 0 is met.
        trial.set_constraint("min_trades", float(self.optimization.min_trades - trades))
        feasible = trades >= self.optimization.min_trades
        _record(row, State.COMPLETE, metrics=metrics, values=scores, feasible=feasible)
        return scores[0] if len(scores) == 1 else tuple(scores)


def _undefined(objectives: list[Objective], values: list[float | None]) -> str:
    names = [
        objective.label
        for objective, value in zip(objectives, values, strict=True)
        if value is None
    ]
    return f"No value for {', '.join(names)} (too few trades or returns to measure it)."


def _record(
    row: OptimizationTrial,
    state: str,
    *,
    metrics: dict[str, Any] | None = None,
    values: list[float] | None = None,
    feasible: bool = True,
    error: str = "",
) -> None:
    """The trial's outcome, its optimisation's count and, when it is the best so far, its best."""
    value = values[0] if values else None
    with transaction.atomic():
        recorded = OptimizationTrial.objects.filter(pk=row.pk, state=State.RUNNING).update(
            state=state,
            metrics=metrics,
            value=value,
            values=values,
            feasible=feasible,
            error=error,
            finished_at=timezone.now(),
        )
        if not recorded:
            return
        optimizations = Optimization.objects.filter(pk=row.optimization_id)
        optimizations.update(**{COUNTERS[state]: F(COUNTERS[state]) + 1})
        if state == State.COMPLETE and feasible:
            optimizations.filter(Q(best_value=None) | Q(best_value__lt=value)).update(
                best_value=value,
                best_params=row.params,
                best_trial=row.number,
                best_metrics=metrics,
            )
        _progress(row.optimization_id)


def _progress(optimization_id: int) -> None:
    """At most one progress event per optimisation every PROGRESS_EVERY_SECONDS from this
    process, but always the one of its last trial."""
    optimization = Optimization.objects.get(pk=optimization_id)
    now = time.monotonic()
    last = _last_event.get(optimization_id)
    last_trial = optimization.finished_count >= optimization.trial_count
    if not last_trial and last is not None and now - last < PROGRESS_EVERY_SECONDS:
        return
    _last_event[optimization_id] = now
    _last_event.move_to_end(optimization_id)
    while len(_last_event) > 100:
        _last_event.popitem(last=False)
    publish(optimization)


def on_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Optuna failed a trial whose worker died (its heartbeat stopped): record it failed."""
    optimization_id = _optimization_id(study.study_name)
    if optimization_id is None:  # not a study of ours
        return
    rows = OptimizationTrial.objects.filter(
        optimization_id=optimization_id, number=trial.number, state=State.RUNNING
    )
    for row in rows:
        _record(row, State.FAILED, error="Its worker stopped responding (lost or killed).")
    logger.warning(
        "optimization.trial_stale",
        extra=context(optimization_id=optimization_id, trial=trial.number),
    )


def _optimization_id(study_name: str) -> int | None:
    prefix, _, rest = study_name.partition("-")
    number = rest.partition("-")[0]
    return int(number) if prefix == "optimization" and number.isdigit() else None


studies.on_stale_trial(on_stale_trial)
