"""Walk-forwards as the tests make and run them: created through the service (nothing sent to a
broker: the caller captures the on-commit callbacks), then run in-process by the task bodies the
workers run, each window's trials first, then each window's out-of-sample task."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from backtests.models import WalkForward, WalkForwardWindow
from backtests.services.optimization_trials import optimization_work
from backtests.services.walk_forward_windows import walk_forward_window_run
from backtests.services.walk_forwards import walk_forward_create
from tests.backtests.run_helpers import create_with, market_fields

if TYPE_CHECKING:
    from tests.backtests.conftest import SampleMarket

SPACE = {"fast": {"low": 3, "high": 20, "step": 1}, "slow": {"low": 25, "high": 80, "step": 5}}
# 4 + 4 × 2 = 12 days: inside the sample's 13.9.
WINDOWS = {"in_sample_days": 4, "out_of_sample_days": 2, "windows": 4}


def create_walk_forward(user: Any, market: SampleMarket, **overrides: Any) -> WalkForward:
    """A queued walk-forward of MA Cross (SMA) over the sample: 4 rolling windows, 3 trials
    each, seeded."""
    fields: dict[str, Any] = {
        "user": user,
        "strategy": "ma_cross",
        "params": {"ma": "sma"},
        **market_fields(market),
        "space": SPACE,
        "objective": "sharpe",
        "trials": 3,
        "seed": 7,
        **WINDOWS,
    }
    return create_with(walk_forward_create, **(fields | overrides))


def windows_of(walk_forward_id: int) -> list[WalkForwardWindow]:
    return list(WalkForwardWindow.objects.filter(walk_forward_id=walk_forward_id).order_by("index"))


def run_optimizations(walk_forward_id: int) -> None:
    """What the workers do first: every window's trials (each optimisation then finishes)."""
    for window in windows_of(walk_forward_id):
        optimization_work(optimization_id=window.optimization_id, worker="w0")


def run_windows(walk_forward_id: int) -> None:
    """What the window tasks do once the optimisations are over."""
    for window in windows_of(walk_forward_id):
        walk_forward_window_run(window_id=window.pk, worker="w0")


def run_walk_forward(walk_forward: WalkForward) -> WalkForward:
    run_optimizations(walk_forward.pk)
    run_windows(walk_forward.pk)
    walk_forward.refresh_from_db()
    return walk_forward


def in_days(market: SampleMarket, days: float) -> Any:
    return market.start + timedelta(days=days)
