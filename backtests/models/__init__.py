"""The backtests app's models: backtests, sweeps and schedules (``runs``), optimisations
(``optimizations``) and walk-forwards (``walk_forwards``). Every model and the names other
modules use are importable from here."""

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
from backtests.models.walk_forwards import WalkForward, WalkForwardWindow

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
    "WalkForward",
    "WalkForwardWindow",
    "epoch_ms",
]
