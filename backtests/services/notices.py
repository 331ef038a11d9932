"""A backtest, a sweep, an optimisation or a walk-forward that finished (done or failed) is told
to its owner's channels (a walk-forward's window optimisations are not: the walk-forward is).

Called in the transaction that writes the final status; ``notify`` writes outbox rows and never
raises. Keys are the run's id and status, so a run is told once.
"""

from __future__ import annotations

from accounts.notifications import notify
from backtests.models import Backtest, Optimization, Sweep, WalkForward, WalkForwardWindow


def backtest_finished(backtest: Backtest) -> None:
    if backtest.status == "done":
        ret = (backtest.metrics or {}).get("total_return")
        result = f"return {ret * 100:+.2f} %" if isinstance(ret, int | float) else "done"
        message = f"{backtest.strategy_id} {backtest.market_label}: {result}, " \
                  f"{backtest.trade_count} trades"  # fmt: skip
    else:
        message = f"{backtest.strategy_id} {backtest.market_label}: {backtest.error}"
    _tell(backtest.user_id, "Backtest", backtest.pk, backtest.status, message)


def sweep_finished(sweep: Sweep) -> None:
    message = (
        f"{sweep.strategy_id} {sweep.market_label}: {sweep.done_count} combinations done, "
        f"{sweep.failed_count} failed"
    )
    _tell(sweep.user_id, "Sweep", sweep.pk, sweep.status, message)


def optimization_finished(optimization: Optimization) -> None:
    if WalkForwardWindow.objects.filter(optimization_id=optimization.pk).exists():
        return
    if optimization.status == "done":
        result = f"best {optimization.best_value:.4g} with {optimization.best_params}"
    else:
        result = optimization.error
    message = (
        f"{optimization.strategy_id} {optimization.market_label}: {result} "
        f"({optimization.done_count} of {optimization.trial_count} trials complete)"
    )
    _tell(optimization.user_id, "Optimization", optimization.pk, optimization.status, message)


def walk_forward_finished(walk_forward: WalkForward) -> None:
    if walk_forward.status == "done":
        ret = (walk_forward.metrics or {}).get("total_return")
        result = "done"
        if isinstance(ret, int | float):
            result = f"out-of-sample return {ret * 100:+.2f} %"
        ratio = walk_forward.overfitting_ratio
        result += f", overfitting ratio {ratio:.2f}" if ratio is not None else ""
    else:
        result = walk_forward.error
    message = f"{walk_forward.strategy_id} {walk_forward.market_label}, " \
              f"{walk_forward.window_count} windows: {result}"  # fmt: skip
    pk, status = walk_forward.pk, walk_forward.status
    notify(
        user=walk_forward.user_id, kind="backtest_finished", key=f"walk-forward-{pk}-{status}",
        facts={"what": "Walk-forward", "name": f"#{pk}", "status": status, "message": message},
        data={"walk_forward_id": pk},
    )  # fmt: skip


def _tell(user_id: int, what: str, pk: int, status: str, message: str) -> None:
    notify(
        user=user_id, kind="backtest_finished", key=f"{what.lower()}-{pk}-{status}",
        facts={"what": what, "name": f"#{pk}", "status": status, "message": message},
        data={f"{what.lower()}_id": pk},
    )  # fmt: skip
