"""A sweep's combination as a backtest of its own: its trades, charts and report."""

from __future__ import annotations

import dataclasses
import logging

from backtests.links import params_key, sweep_backtests
from backtests.models import Backtest, Sweep
from backtests.services.backtests import backtest_create
from tradingbot.errors import AppError
from tradingbot.logconfig import context

logger = logging.getLogger(__name__)


def sweep_run_backtest(*, sweep: Sweep, seq: int) -> tuple[Backtest, bool]:
    """The backtest of combination ``seq`` of ``sweep`` (same configuration, parameters and
    period) and whether it was created now: the owner's existing one when there is one (not
    failed or cancelled), else a new one, queued. AppError ``not_found`` for an unknown
    ``seq``; a create refused (quota, candles gone) raises as ``backtest_create`` does."""
    run = sweep.runs.filter(seq=seq).first()
    if run is None:
        raise AppError("not_found", f"Sweep #{sweep.pk} has no combination {seq}.", status=404)
    existing = sweep_backtests(sweep=sweep).get(params_key(run.params))
    if existing is not None:
        return existing, False
    spec = dataclasses.replace(sweep.run_spec(), params=run.params)
    backtest = backtest_create(user=sweep.user, spec=spec, start=sweep.start, end=sweep.end)
    logger.info(
        "sweep.run_backtested",
        extra=context(sweep_id=sweep.pk, seq=seq, backtest_id=backtest.pk),
    )
    return backtest, True
