"""The snapshots that start a subscription to ``backtest:<id>`` and ``sweep:<id>``."""

from __future__ import annotations

from accounts.models import User
from backtests import selectors
from backtests.events import BacktestStatusData, SweepStatusData
from backtests.services.backtests import backtest_status_data
from backtests.services.sweeps import sweep_status_data


def backtest_snapshot(user: User, pk: int) -> BacktestStatusData:
    """``Http404`` for a backtest not the user's."""
    return backtest_status_data(selectors.backtest_get(user=user, pk=pk))


def sweep_snapshot(user: User, pk: int) -> SweepStatusData:
    """``Http404`` for a sweep not the user's."""
    return sweep_status_data(selectors.sweep_get(user=user, pk=pk))
