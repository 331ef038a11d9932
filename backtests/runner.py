"""One backtest, end to end, from candles and a strategy instance. Pure: no Django.

The strategy's ``positions`` is the very function a live bot calls on its closed candles, so a
backtest and a live run of the same strategy take the same decisions on the same candles.
"""

from __future__ import annotations

import pandas as pd

from backtests.engine import BacktestResult, BacktestSettings, simulate
from backtests.engine_perp import Table
from strategies.base import Strategy


def run_backtest(
    candles: pd.DataFrame,
    strategy: Strategy,
    settings: BacktestSettings,
    *,
    funding: Table | None = None,
    mark: Table | None = None,
) -> BacktestResult:
    """Target positions from ``strategy`` on ``candles``, simulated with ``settings`` (and, for a
    perpetual swap, its ``funding`` and ``mark`` prices: see :func:`backtests.engine.simulate`)."""
    target = strategy.positions(candles)
    return simulate(candles, target.to_numpy(), settings, funding=funding, mark=mark)
