"""The backtests app's models: backtests, sweeps and schedules (``runs``), and optimisations
(``optimizations``). Every model and the names other modules use are importable from here."""

from backtests.models.optimizations import Optimization, OptimizationTrial, TrialState
from backtests.models.runs import (
    ACCOUNT_FIELDS,
    ACTIVE_STATUSES,
    CONFIG_FIELDS,
    MONEY,
    RATE,
    Backtest,
    BacktestSchedule,
    BacktestTrade,
    MarginMode,
    PeriodRun,
    RunConfig,
    RunStatus,
    Sweep,
    SweepRun,
    epoch_ms,
)

__all__ = [
    "ACCOUNT_FIELDS",
    "ACTIVE_STATUSES",
    "CONFIG_FIELDS",
    "MONEY",
    "RATE",
    "Backtest",
    "BacktestSchedule",
    "BacktestTrade",
    "MarginMode",
    "Optimization",
    "OptimizationTrial",
    "PeriodRun",
    "RunConfig",
    "RunStatus",
    "Sweep",
    "SweepRun",
    "TrialState",
    "epoch_ms",
]
