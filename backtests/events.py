"""Payloads of the backtests' live events (``data`` of ``backtest.*`` and ``sweep.*`` messages).

``backtest.status`` reports progress while a backtest runs (at most two a second) and each change
of status: queued, running, then done, failed or cancelled. ``sweep.status`` does the same for
a sweep, ``optimization.status`` for an optimisation (trials finished, best so far) and
``walk_forward.status`` for a walk-forward (its windows' trials and out-of-sample runs). A
subscription starts with a ``*.snapshot`` of the same shape, read for its owner only.

Reads only (no service is imported here): this module may be loaded while the apps start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from backtests import optimization_selectors, selectors, walk_forward_selectors

if TYPE_CHECKING:
    from accounts.models import User
    from backtests.models import Backtest, Optimization, Sweep, WalkForward


class BacktestStatusData(TypedDict):
    status: str
    progress: float  # 0..1
    error: str


class SweepStatusData(TypedDict):
    status: str
    progress: float  # 0..1
    done: int
    failed: int
    total: int


def backtest_status_data(backtest: Backtest) -> BacktestStatusData:
    return {
        "status": backtest.status,
        "progress": round(backtest.progress, 4),
        "error": backtest.error,
    }


def sweep_status_data(sweep: Sweep) -> SweepStatusData:
    return {
        "status": sweep.status,
        "progress": round(sweep.progress, 4),
        "done": sweep.done_count,
        "failed": sweep.failed_count,
        "total": sweep.combination_count,
    }


def backtest_snapshot(*, user: User, pk: int) -> BacktestStatusData:
    """``backtest.snapshot``: the user's backtest as it is now; Http404 if not theirs."""
    return backtest_status_data(selectors.backtest_get(user=user, pk=pk))


def sweep_snapshot(*, user: User, pk: int) -> SweepStatusData:
    """``sweep.snapshot``: the user's sweep as it is now; Http404 if not theirs."""
    return sweep_status_data(selectors.sweep_get(user=user, pk=pk))


class OptimizationStatusData(TypedDict):
    status: str
    progress: float  # 0..1
    done: int
    pruned: int
    failed: int
    total: int
    best_value: float | None
    best_params: dict[str, Any] | None
    error: str


def optimization_status_data(optimization: Optimization) -> OptimizationStatusData:
    return {
        "status": optimization.status,
        "progress": round(optimization.progress, 4),
        "done": optimization.done_count,
        "pruned": optimization.pruned_count,
        "failed": optimization.failed_count,
        "total": optimization.trial_count,
        "best_value": optimization.best_value,
        "best_params": optimization.best_params,
        "error": optimization.error,
    }


def optimization_snapshot(*, user: User, pk: int) -> OptimizationStatusData:
    """``optimization.snapshot``: the user's optimisation as it is now; Http404 if not theirs."""
    return optimization_status_data(optimization_selectors.optimization_get(user=user, pk=pk))


class WalkForwardStatusData(TypedDict):
    status: str
    progress: float  # 0..1: trials and out-of-sample runs finished, of all there are
    windows_done: int
    windows: int
    trials_finished: int
    trials: int
    error: str


def walk_forward_status_data(walk_forward: WalkForward) -> WalkForwardStatusData:
    return {
        "status": walk_forward.status,
        "progress": round(walk_forward.progress, 4),
        "windows_done": walk_forward.windows_done,
        "windows": walk_forward.window_count,
        "trials_finished": walk_forward.trials_finished,
        "trials": walk_forward.trial_count,
        "error": walk_forward.error,
    }


def walk_forward_snapshot(*, user: User, pk: int) -> WalkForwardStatusData:
    """``walk_forward.snapshot``: the user's walk-forward as it is now; Http404 if not theirs."""
    return walk_forward_status_data(walk_forward_selectors.walk_forward_get(user=user, pk=pk))
