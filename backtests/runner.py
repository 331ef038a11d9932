"""One backtest, end to end, from candles and a strategy instance. Pure: no Django.

The strategy's ``positions`` is the very function a live bot calls on its closed candles, so a
backtest and a live run of the same strategy take the same decisions on the same candles.
"""

from __future__ import annotations

import pandas as pd

from backtests.engine import BacktestResult, BacktestSettings, simulate
from strategies.base import Strategy


def run_backtest(
    candles: pd.DataFrame, strategy: Strategy, settings: BacktestSettings
) -> BacktestResult:
    """Target positions from ``strategy`` on ``candles``, simulated with ``settings``."""
    target = strategy.positions(candles)
    return simulate(candles, target.to_numpy(), settings)
