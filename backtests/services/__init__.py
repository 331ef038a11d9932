"""Every write and business operation of the backtests app (see each module)."""

from backtests.services.backtests import (
    backtest_cancel,
    backtest_create,
    backtest_delete,
    backtest_execute,
    backtest_rerun,
    backtests_fail_stale,
    backtests_recover,
    backtests_requeue_lost,
)
from backtests.services.config import run_spec_check
from backtests.services.optimizations import (
    optimization_cancel,
    optimization_create,
    optimization_delete,
    optimization_finish,
    optimization_rerun,
    optimizations_fail_stale,
    optimizations_requeue_lost,
)
from backtests.services.schedules import (
    parse_cron,
    schedule_create,
    schedule_delete,
    schedule_run,
    schedule_sync_beat,
    schedule_update,
)
from backtests.services.sweep_backtests import sweep_run_backtest
from backtests.services.sweep_results import sweep_finish
from backtests.services.sweep_runs import sweep_run_execute, sweep_runs_execute
from backtests.services.sweeps import (
    sweep_cancel,
    sweep_create,
    sweep_delete,
    sweep_rerun,
    sweeps_fail_stale,
    sweeps_recover,
    sweeps_requeue_lost,
)

__all__ = [
    "backtest_cancel",
    "backtest_create",
    "backtest_delete",
    "backtest_execute",
    "backtest_rerun",
    "backtests_fail_stale",
    "backtests_recover",
    "backtests_requeue_lost",
    "optimization_cancel",
    "optimization_create",
    "optimization_delete",
    "optimization_finish",
    "optimization_rerun",
    "optimizations_fail_stale",
    "optimizations_requeue_lost",
    "parse_cron",
    "run_spec_check",
    "schedule_create",
    "schedule_delete",
    "schedule_run",
    "schedule_sync_beat",
    "schedule_update",
    "sweep_cancel",
    "sweep_create",
    "sweep_delete",
    "sweep_finish",
    "sweep_rerun",
    "sweep_run_backtest",
    "sweep_run_execute",
    "sweep_runs_execute",
    "sweeps_fail_stale",
    "sweeps_recover",
    "sweeps_requeue_lost",
]
