"""Reads of optimisations, always scoped to their owner (another user's is a 404).

Besides the list and the detail: the trials table, the optimisation history (each complete
trial's value and the best so far, in trial order) and a parallel-coordinates view (each
complete trial's parameters and value), both for the page's charts.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import User
from backtests.models import Optimization, OptimizationTrial, TrialState
from strategies.registry import UnknownStrategyError, active

# Best value first; trials without a value (pruned, failed, running) last on every database
# (PostgreSQL puts NULLs first in a descending order, SQLite last).
BEST_FIRST = (F("value").desc(nulls_last=True), "number")
TRIAL_ORDERS: dict[str, tuple[Any, ...]] = {"number": ("number",), "value": BEST_FIRST}


def optimization_list(
    *, user: User, status: str | None = None, strategy: str | None = None
) -> QuerySet[Optimization]:
    """The user's optimisations, newest first, optionally filtered."""
    found = Optimization.objects.filter(user=user).order_by("-created_at", "-id")
    if status:
        found = found.filter(status=status)
    if strategy:
        found = found.filter(strategy_id=strategy)
    return found


def optimization_get(*, user: User, pk: int) -> Optimization:
    return get_object_or_404(Optimization, user=user, pk=pk)


def trial_list(
    *, optimization: Optimization, state: str | None = None, order: str = "number"
) -> QuerySet[OptimizationTrial]:
    """The optimisation's trials, by number (or best value first), optionally of one state."""
    trials = optimization.trials.order_by(*TRIAL_ORDERS[order])
    if state:
        trials = trials.filter(state=state)
    return trials


def optimization_history(*, optimization: Optimization) -> list[dict[str, Any]]:
    """Each complete trial in number order: its value and the best feasible value so far."""
    rows = optimization.trials.filter(state=TrialState.COMPLETE).order_by("number")
    best: float | None = None
    history = []
    for number, value, feasible in rows.values_list("number", "value", "feasible"):
        if feasible and value is not None and (best is None or value > best):
            best = value
        history.append({"number": number, "value": value, "feasible": feasible, "best": best})
    return history


def searched_params(optimization: Optimization) -> list[str]:
    """The searched parameters in the strategy's own order, on every database (PostgreSQL's
    jsonb keeps an object's keys in an order of its own, not the request's)."""
    try:
        declared = [param.name for param in active().get(optimization.strategy_id).params]
    except UnknownStrategyError:
        declared = []
    rank = {name: index for index, name in enumerate(declared)}
    return sorted(optimization.space, key=lambda name: (rank.get(name, len(rank)), name))


def parallel_coordinates(*, optimization: Optimization) -> dict[str, Any]:
    """The searched parameters (the axes) and each complete trial's values on them."""
    axes = searched_params(optimization)
    rows = optimization.trials.filter(state=TrialState.COMPLETE).order_by("number")
    return {
        "axes": axes,
        "trials": [
            {"number": number, "value": value, "params": {axis: params.get(axis) for axis in axes}}
            for number, value, params in rows.values_list("number", "value", "params")
        ],
    }
