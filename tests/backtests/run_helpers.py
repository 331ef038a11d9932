"""Creating runs through the services, as the tests spell them: flat fields.

The create services take a :class:`~backtests.spec.RunSpec` and the fields of their own kind
(a period, a grid, a schedule's timing); :func:`create_with` splits flat fields into the two, so
that a test overrides any of them alike (``stop_loss=None``, ``start=...``, ``grid=...``).
Runs created here are not sent to a broker: the tests run them in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django_celery_beat.models import PeriodicTask

from backtests import services
from backtests.models import Backtest, BacktestSchedule, Sweep
from backtests.spec import split_spec

if TYPE_CHECKING:
    from tests.backtests.conftest import SampleMarket

Run = TypeVar("Run")
MA_CROSS = {"fast": 10, "slow": 30, "ma": "sma"}


def create_with(create: Callable[..., Run], **fields: Any) -> Run:
    """Call ``create`` (``services.backtest_create``, ...) with ``fields``: those of a RunSpec
    go in its ``spec``, the others as they are."""
    spec, rest = split_spec(fields)
    return create(spec=spec, **rest)


def market_fields(market: SampleMarket, *, period: bool = True) -> dict[str, Any]:
    """The sample market and, with ``period``, all of its candles; an account of 10,000 with a
    0.1 % fee."""
    fields: dict[str, Any] = {
        "exchange": market.exchange,
        "symbol": market.symbol,
        "timeframe": market.timeframe,
        "initial_cash": Decimal("10000"),
        "fee_rate": Decimal("0.001"),
    }
    if period:
        fields |= {"start": market.start, "end": market.end}
    return fields


def create_backtest(user: Any, market: SampleMarket, **overrides: Any) -> Backtest:
    """A queued backtest of MA Cross 10/30 over the whole sample (not enqueued)."""
    fields: dict[str, Any] = {
        "user": user,
        "strategy": "ma_cross",
        "params": MA_CROSS,
        **market_fields(market),
        "enqueue": False,
    }
    return create_with(services.backtest_create, **(fields | overrides))


def create_schedule(user: Any, market: SampleMarket, **overrides: Any) -> BacktestSchedule:
    """MA Cross 10/30 on the sample market every day at 02:00 over the last 15 days."""
    fields: dict[str, Any] = {
        "user": user,
        "name": "nightly",
        "cron": "0 2 * * *",
        "lookback_days": 15,
        "strategy": "ma_cross",
        "params": MA_CROSS,
        **market_fields(market, period=False),
    }
    return create_with(services.schedule_create, **(fields | overrides))


def create_sweep(user: Any, market: SampleMarket, **overrides: Any) -> Sweep:
    """A queued sweep of MA Cross (EMA) over fast (5, 10) by slow (20, 40, 60) and the whole
    sample, ranked by Sharpe ratio."""
    fields: dict[str, Any] = {
        "user": user,
        "strategy": "ma_cross",
        "grid": {"fast": [5, 10], "slow": [20, 40, 60]},
        "params": {"ma": "ema"},
        "rank_by": "sharpe",
        **market_fields(market),
    }
    return create_with(services.sweep_create, **(fields | overrides))


def run_sweep(user: Any, market: SampleMarket, rank_by: str = "sharpe") -> Sweep:
    """A finished sweep (see :func:`create_sweep`), run in-process."""
    sweep = create_sweep(user, market, rank_by=rank_by)
    for run_id in sweep.runs.values_list("pk", flat=True):
        services.sweep_run_execute(run_id=run_id)
    services.sweep_finish(sweep_id=sweep.pk)
    sweep.refresh_from_db()
    return sweep


def beat_task(schedule: BacktestSchedule) -> PeriodicTask:
    return PeriodicTask.objects.select_related("crontab").get(
        name=f"backtest-schedule-{schedule.pk}"
    )


def crontab_fields(task: PeriodicTask) -> tuple[str, ...]:
    timing = task.crontab
    assert timing is not None
    return (
        timing.minute,
        timing.hour,
        timing.day_of_month,
        timing.month_of_year,
        timing.day_of_week,
    )
