"""Reads of the backtests app, always scoped to their owner.

Another user's backtest, sweep or schedule is a 404, indistinguishable from one that does not
exist. Lists and details leave out the equity curve (up to ``BACKTEST_EQUITY_POINTS`` pairs):
only the equity endpoint reads it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from accounts.models import User
from backtests.models import Backtest, BacktestSchedule, BacktestTrade, RunStatus, Sweep, SweepRun

RECENT_RUNS = 10


def _backtests(user: User) -> QuerySet[Backtest]:
    return Backtest.objects.filter(user=user).defer("equity")


def backtest_list(
    *,
    user: User,
    status: str | None = None,
    strategy: str | None = None,
    schedule: BacktestSchedule | None = None,
) -> QuerySet[Backtest]:
    """The user's backtests, newest first, optionally filtered."""
    backtests = _backtests(user).order_by("-created_at", "-id")
    if status:
        backtests = backtests.filter(status=status)
    if strategy:
        backtests = backtests.filter(strategy_id=strategy)
    if schedule is not None:
        backtests = backtests.filter(schedule=schedule)
    return backtests


def backtest_get(*, user: User, pk: int) -> Backtest:
    """The user's backtest (without its equity curve), or 404."""
    return get_object_or_404(_backtests(user), pk=pk)


def backtest_equity(*, user: User, pk: int) -> list[list[Any]]:
    """The equity curve ``[[time_ms, equity], ...]`` of the user's backtest (empty until done),
    or 404."""
    equity = Backtest.objects.filter(user=user, pk=pk).values_list("equity", flat=True).first()
    if equity is None:  # no such row: the column itself is never null
        raise Http404
    return list(equity)


def backtest_trade_list(
    *, backtest: Backtest, side: str | None = None, exit_reason: str | None = None
) -> QuerySet[BacktestTrade]:
    """A backtest's trades in the order they happened, optionally filtered."""
    trades = BacktestTrade.objects.filter(backtest=backtest).order_by("seq")
    if side:
        trades = trades.filter(side=side)
    if exit_reason:
        trades = trades.filter(exit_reason=exit_reason)
    return trades


def sweep_list(
    *, user: User, status: str | None = None, strategy: str | None = None
) -> QuerySet[Sweep]:
    """The user's sweeps, newest first, optionally filtered."""
    sweeps = Sweep.objects.filter(user=user).order_by("-created_at", "-id")
    if status:
        sweeps = sweeps.filter(status=status)
    if strategy:
        sweeps = sweeps.filter(strategy_id=strategy)
    return sweeps


def sweep_get(*, user: User, pk: int) -> Sweep:
    return get_object_or_404(Sweep, user=user, pk=pk)


def sweep_failure_list(*, sweep: Sweep) -> QuerySet[SweepRun]:
    """The combinations that failed, in grid order (the ranking holds the finished ones)."""
    return sweep.runs.filter(status=RunStatus.FAILED).order_by("seq").only("params", "error")


def schedule_list(*, user: User) -> QuerySet[BacktestSchedule]:
    return BacktestSchedule.objects.filter(user=user).order_by("-created_at", "-id")


def schedule_get(*, user: User, pk: int) -> BacktestSchedule:
    return get_object_or_404(BacktestSchedule, user=user, pk=pk)


def schedule_recent_runs(
    *, schedule: BacktestSchedule, limit: int = RECENT_RUNS
) -> QuerySet[Backtest]:
    """The schedule's latest runs, newest first (the full history is the backtest list)."""
    return (
        Backtest.objects.filter(schedule=schedule)
        .order_by("-created_at", "-id")
        .only("id", "status", "error", "start", "end", "metrics", "created_at")[:limit]
    )
