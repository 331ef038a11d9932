"""An optimisation's trial as a backtest of its own: its trades, charts and report."""

from __future__ import annotations

import dataclasses
import logging

from backtests.links import complete_params, params_key, period_backtests
from backtests.models import Backtest, Optimization, TrialState
from backtests.services.backtests import backtest_create
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)


def optimization_trial_backtest(
    *, optimization: Optimization, number: int | None = None
) -> tuple[Backtest, bool]:
    """The backtest of trial ``number`` of ``optimization`` (its best trial when None): the same
    configuration, the trial's parameters, the same period; and whether it was created now. The
    owner's existing one when there is one (not failed or cancelled), else a new one, queued.

    AppError ``not_found`` (404) for a trial that is not complete (or none at all, or no best
    yet); a create refused (quota, candles gone) raises as ``backtest_create`` does."""
    if number is None:
        number = optimization.best_trial
    if number is None:
        raise AppError(
            "not_found", f"Optimisation #{optimization.pk} has no best trial yet.", status=404
        )
    trial = optimization.trials.filter(number=number, state=TrialState.COMPLETE).first()
    if trial is None:
        raise AppError(
            "not_found",
            f"Optimisation #{optimization.pk} has no complete trial {number}.",
            status=404,
        )
    params = complete_params(optimization.strategy_id, trial.params)
    existing = period_backtests(run=optimization).get(params_key(params))
    if existing is not None:
        return existing, False
    spec = dataclasses.replace(optimization.run_spec(), params=trial.params)
    backtest = backtest_create(
        user=optimization.user, spec=spec, start=optimization.start, end=optimization.end
    )
    logger.info(
        "optimization.trial_backtested",
        extra=context(optimization_id=optimization.pk, trial=number, backtest_id=backtest.pk),
    )
    return backtest, True
