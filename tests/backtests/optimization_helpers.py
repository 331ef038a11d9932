"""Optimisations as the page, admin and browser tests make them: created through the service and
run in-process by the task's own body (``optimization_work``), as the API tests do.

Trials write through a heartbeat thread and Optuna's storage of their own: tests that run them
use the transactional database (``django_db(transaction=True)``).
"""

from __future__ import annotations

from typing import Any

from backtests import services
from backtests.models import Optimization
from backtests.services import candle_cache
from backtests.services.optimization_trials import optimization_work
from tests.backtests.conftest import SampleMarket
from tests.backtests.run_helpers import create_with, market_fields

SPACE = {"fast": {"low": 3, "high": 20, "step": 1}, "slow": {"low": 25, "high": 80, "step": 5}}


def create_optimization(user: Any, market: SampleMarket, **overrides: Any) -> Optimization:
    """A queued optimisation of MA Cross (SMA) over fast 3 to 20 and slow 25 to 80 on the whole
    sample, maximising the Sharpe ratio over 12 trials (seed 7). Its tasks are sent only when
    a transactional test commits it, to the test broker's backtests queue, which no worker of
    the suite consumes."""
    fields: dict[str, Any] = {
        "user": user,
        "strategy": "ma_cross",
        "params": {"ma": "sma"},
        **market_fields(market),
        "space": SPACE,
        "objective": "sharpe",
        "trials": 12,
        "seed": 7,
    }
    return create_with(services.optimization_create, **(fields | overrides))


def run_trials(optimization: Optimization, tasks: int = 1) -> Optimization:
    """What the workers do: each task runs trials until none is left; then it is finished."""
    candle_cache.forget()  # ids come back after a flush: no earlier test's candles
    for slot in range(tasks):
        optimization_work(optimization_id=optimization.pk, worker=f"w{slot}", slot=slot)
    optimization.refresh_from_db()
    return optimization


def make_optimization(user: Any, market: SampleMarket, **overrides: Any) -> Optimization:
    """A finished optimisation (:func:`create_optimization`, then its trials run)."""
    return run_trials(create_optimization(user, market, **overrides))
